"""RSRNet: shapes and ranges, each equation of the RSR module against a naive loop, every ablation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from inharmony import losses
from inharmony.models import PretrainedWeightsUnavailableError, RSRNet, create_model, list_models
from inharmony.models._rsr import (
    ConvGRUCell,
    RecurrentSelfReasoning,
    SimilarityReasoning,
    TwoConvCell,
    background_feature,
    convex_upsample,
    multiscale_similarity,
    neighbourhood_directions,
)
from inharmony.models.rsrnet import TABLE2_ROW_NAMES, TABLE2_ROWS, table2_options

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEYS = {"mask", "mask_dec", "mask_rsr", "rsr_masks"}


def _small(**kwargs) -> RSRNet:
    """A fast variant for option tests: ResNet18 encoder, few iterations, narrow decoder."""
    return RSRNet(**{"backbone": "resnet18", "iterations": 2, "decoder_channels": (64, 32, 16, 8), **kwargs})


def _maps(out: dict) -> list[torch.Tensor]:
    return [v for k, v in out.items() if k != "rsr_masks"] + list(out["rsr_masks"])


def _assert_probability_maps(out: dict, shape: tuple[int, ...]) -> None:
    for m in _maps(out):
        assert m.shape == shape
        assert torch.isfinite(m).all()
        assert m.min() >= 0 and m.max() <= 1


# ---------------------------------------------------------------- whole model


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 64, 96)])
def test_forward_backward_default_model(shape):
    torch.manual_seed(0)
    model = create_model("rsrnet")
    x = torch.randn(shape)
    out = model(x)
    assert set(out) == KEYS
    assert len(out["rsr_masks"]) == 12
    _assert_probability_maps(out, (shape[0], 1, *shape[2:]))
    assert out["mask_rsr"] is out["rsr_masks"][-1]
    # something that touches every output, so every parameter must receive a gradient
    loss = sum(m.mean() for m in _maps(out))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_runs_under_autocast():
    torch.manual_seed(13)
    model = _small()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 32, 32))
    _assert_probability_maps(out, (1, 1, 32, 32))
    out["mask"].float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_learned_combination_stays_a_probability_under_bf16_autocast():
    # Seen in a bf16 training run of rsrnet_resnet18 (step 475): gate 0.0017 in bf16, so ``1 - gate`` rounded
    # to 1.0 and gate·M_dec + (1 − gate)·M_rsr came out as 1.0001 where M_rsr = 1; BCE then refused the mask.
    torch.manual_seed(2)
    model = _small().eval()
    model.gate.register_forward_hook(lambda mod, args, out: torch.full_like(out, 0.0017, dtype=torch.bfloat16))
    model.rsr.register_forward_hook(lambda mod, args, out: (out[0], [torch.ones_like(m) for m in out[1]]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 32, 32))
    assert float(out["mask_dec"].float().min()) > 0  # so a bf16 ``1 - gate`` of 1.0 would push the mix above 1
    assert float(out["mask"].max()) <= 1.0 and float(out["mask"].min()) >= 0.0
    expected = 0.0017 * out["mask_dec"].float() + (1 - 0.0017)
    torch.testing.assert_close(out["mask"], expected.clamp(0, 1), atol=2e-5, rtol=0)


def test_background_feature_does_not_overflow_in_half_precision():
    style = torch.full((1, 2, 128, 128), 300.0, dtype=torch.float16)  # a half-precision sum would be inf
    f_bg = background_feature(style, torch.zeros(1, 1, 128, 128, dtype=torch.float16))
    assert f_bg.dtype == torch.float16
    torch.testing.assert_close(f_bg, torch.full((1, 2), 300.0, dtype=torch.float16))


def test_learned_combination_lies_between_the_two_masks():
    torch.manual_seed(1)
    out = _small().eval()(torch.randn(2, 3, 32, 48))
    low = torch.minimum(out["mask_dec"], out["mask_rsr"])
    high = torch.maximum(out["mask_dec"], out["mask_rsr"])
    assert (out["mask"] >= low - 1e-6).all() and (out["mask"] <= high + 1e-6).all()
    # and it is not simply one of them or their average
    assert not torch.allclose(out["mask"], 0.5 * (out["mask_dec"] + out["mask_rsr"]), atol=1e-4)


def test_fixed_combinations_follow_their_formula():
    torch.manual_seed(2)
    x = torch.randn(1, 3, 32, 32)
    out = _small(combination="average").eval()(x)
    torch.testing.assert_close(out["mask"], 0.5 * (out["mask_dec"] + out["mask_rsr"]))
    out = _small(combination="decoder").eval()(x)
    torch.testing.assert_close(out["mask"], out["mask_dec"])


def test_decoder_is_guided_by_the_rsr_mask():
    torch.manual_seed(3)
    for guidance in ("all", "first"):
        model = _small(guidance=guidance).eval()
        feats = model.encoder(torch.randn(1, 3, 32, 32))
        guide = torch.zeros(1, 1, 4, 4)
        _, a = model.decoder(feats, guide)
        _, b = model.decoder(feats, guide + 1)
        assert not torch.allclose(a, b)


@pytest.mark.parametrize("iterations", [1, 5])
def test_number_of_rsr_masks_is_iterations(iterations):
    out = _small(iterations=iterations).eval()(torch.randn(1, 3, 32, 32))
    assert len(out["rsr_masks"]) == iterations
    # the masks are distinct iterations, not one map repeated
    if iterations > 1:
        assert not torch.equal(out["rsr_masks"][0], out["rsr_masks"][-1])


ABLATIONS = {
    **{f"table2_row{row}": dict(options) for row, options in TABLE2_ROWS.items()},
    "residual_on_probabilities": dict(residual="probabilities"),
    "residual_on_probabilities_from_half": dict(residual="probabilities", initial_mask=0.5),
    "logit_residual_from_other_prior": dict(initial_mask=0.3),
    "hidden_from_context": dict(hidden_init="context"),
    "guidance_first_stage_only": dict(guidance="first"),
    "detach_between_iterations": dict(detach_mask=True),
    "single_scale_msm": dict(scales=(0,)),
    "no_msm_and_style_context": dict(use_similarity=False, context="style"),
}


@pytest.mark.parametrize("options", ABLATIONS.values(), ids=ABLATIONS.keys())
def test_every_option_builds_runs_and_trains(options):
    torch.manual_seed(4)
    model = _small(**options)
    out = model(torch.randn(2, 3, 32, 48))
    expected = KEYS - {"mask_rsr"} if options.get("rsr") == "none" else KEYS
    assert set(out) == expected
    assert len(out["rsr_masks"]) == (0 if options.get("rsr") == "none" else 2)
    _assert_probability_maps(out, (2, 1, 32, 48))
    sum(m.mean() for m in _maps(out)).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_ablations_drop_the_parts_they_remove():
    def names(model: RSRNet) -> set[str]:
        return {".".join(n.split(".")[:2]) for n, _ in model.named_parameters()}

    full = names(_small())
    assert {"rsr.similarity_embed", "rsr.upsample_head", "gate.body"} <= full
    assert "rsr.similarity_embed" not in names(_small(use_similarity=False))
    # without the MSM nothing reads F_s: its head is not built (row 6)
    assert not any(n.startswith("style_head") for n in names(_small(use_similarity=False)))
    assert any(n.startswith("style_head") for n in names(_small(use_similarity=False, context="style")))
    assert not any(n.startswith("rsr.hidden_init") for n in names(_small()))
    assert "rsr.upsample_head" not in names(_small(upsample="bilinear"))
    assert not any(n.startswith("conventional_head") for n in names(_small(context="style")))
    assert not any(n.startswith("gate") for n in names(_small(combination="average")))
    assert not any(n.startswith("rsr") for n in names(_small(rsr="similarity_only")))
    assert not any(n.startswith(("rsr", "style_head")) for n in names(_small(rsr="none", combination="decoder")))


def test_registry_entry():
    assert {"rsrnet", "rsrnet_resnet18"} <= set(list_models())
    model = create_model("rsrnet", iterations=3)
    cfg = model.pretrained_cfg
    assert cfg.architecture == "rsrnet" and cfg.hf_hub_id is None
    assert dict(cfg.metrics) == {"ap": 82.57, "f1": 0.7607, "iou": 71.63}
    assert "2210.02036" in cfg.paper_url
    with pytest.raises(PretrainedWeightsUnavailableError, match="no published weights"):
        create_model("rsrnet", pretrained=True)


def test_save_and_load_pretrained_keeps_options(tmp_path):
    torch.manual_seed(14)
    model = _small(iterations=3, scales=(0, 2), upsample="bilinear", combination="average").eval()
    model.save_pretrained(tmp_path)
    again = RSRNet.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), again(x)
    assert len(b["rsr_masks"]) == 3 and again.rsr.scales == (0, 2) and again.rsr.upsample_head is None
    torch.testing.assert_close(a["mask"], b["mask"])


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(1, 3, 60, 64), "multiples of 16"),
        (torch.zeros(1, 1, 64, 64), r"\(B, 3, H, W\)"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "float"),
    ],
)
def test_bad_input_is_reported(x, message):
    with pytest.raises(ValueError, match=message):
        _small()(x)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(recurrent_unit="lstm"), "recurrent_unit|cell"),
        (dict(upsample="nearest"), "upsample"),
        (dict(combination="max"), "combination"),
        (dict(rsr="none"), "combination='decoder'"),
        (dict(iterations=0), "at least 1"),
        (dict(decoder_channels=(64, 32, 16)), "4 widths"),
        (dict(scales=(-1, 0)), "scales"),
        (dict(recurrent_unit="conv", hidden_init="context"), "hidden_init='context' needs recurrent_unit='gru'"),
        (dict(initial_mask=0.0), r"initial_mask must be in \(0, 1\)"),
        (dict(initial_mask=1.0), r"initial_mask must be in \(0, 1\)"),
        (dict(residual="probabilities", initial_mask=1.5), r"initial_mask must be in \[0, 1\]"),
    ],
)
def test_bad_options_are_reported(options, message):
    with pytest.raises(ValueError, match=message):
        _small(**options)


# ---------------------------------------------------------------- Table 2: one option set per row


def _keep(seen: dict, key: str, value: object) -> None:
    """Record the first value seen under ``key``; return None so that a hook changes nothing."""
    seen.setdefault(key, value)


def _rsr_io(model: RSRNet, x: torch.Tensor) -> tuple[dict, tuple, tuple]:
    """Run ``model`` and return (outputs, the RSR module's inputs, its outputs)."""
    seen: dict = {}
    handles = [
        model.rsr.register_forward_pre_hook(lambda m, args: _keep(seen, "args", args)),
        model.rsr.register_forward_hook(lambda m, args, out: _keep(seen, "out", out)),
    ]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, seen["args"], seen["out"]


def _row1(model: RSRNet, x: torch.Tensor) -> None:  # UNet
    assert model.rsr is None and model.style_head is None and model.conventional_head is None
    assert model.gate is None and all(stage.guide_channels == 0 for stage in model.decoder.stages)
    out = model(x)
    assert set(out) == KEYS - {"mask_rsr"} and out["rsr_masks"] == [] and out["mask"] is out["mask_dec"]


def _row2(model: RSRNet, x: torch.Tensor) -> None:  # UNet + RSR, M_dec evaluated
    assert isinstance(model.rsr, RecurrentSelfReasoning) and isinstance(model.rsr.cell, ConvGRUCell)
    assert model.gate is None and model.decoder.stages[0].guide_channels == 1
    out = model(x)
    assert out["mask"] is out["mask_dec"] and len(out["rsr_masks"]) == model.rsr.iterations


def _row3(model: RSRNet, x: torch.Tensor) -> None:  # UNet + only similarity map, no combination
    assert isinstance(model.rsr, SimilarityReasoning) and model.conventional_head is None
    assert model.style_head is not None and model.gate is None
    out, (style, _), (low, _) = _rsr_io(model, x)
    assert out["mask"] is out["mask_dec"]
    # the last mask is (1 - S^{K-1,0}) / 2 of the style map, and it guides the decoder
    torch.testing.assert_close(low, SimilarityReasoning(model.rsr.iterations)(style)[0])
    torch.testing.assert_close(out["mask_rsr"], F.interpolate(low, scale_factor=8, mode="bilinear"))


def _row4(model: RSRNet, x: torch.Tensor) -> None:  # simple average
    assert model.gate is None and isinstance(model.rsr, RecurrentSelfReasoning)
    out = model(x)
    torch.testing.assert_close(out["mask"], 0.5 * (out["mask_dec"] + out["mask_rsr"]))


def _row5(model: RSRNet, x: torch.Tensor) -> None:  # w/o GRU
    assert isinstance(model.rsr.cell, TwoConvCell) and model.gate is not None
    assert model.rsr.use_similarity and model.rsr.upsample_head is not None


def _row6(model: RSRNet, x: torch.Tensor) -> None:  # w/o MSM: only F_c and M^{k-1} reach the GRU
    assert not model.rsr.use_similarity and not hasattr(model.rsr, "similarity_embed")
    assert model.style_head is None and model.conventional_head is not None
    _, (style, context), _ = _rsr_io(model, x)
    assert style is None and context.shape[1] == 256


def _row7(model: RSRNet, x: torch.Tensor) -> None:  # w/o F_c: F_s is the context
    assert model.conventional_head is None and model.style_head is not None and model.rsr.use_similarity
    _, (style, context), _ = _rsr_io(model, x)
    assert context is style


def _row8(model: RSRNet, x: torch.Tensor) -> None:  # w/o weighted upsample
    assert model.rsr.upsample_head is None and model.gate is not None
    out, _, (low, _) = _rsr_io(model, x)
    torch.testing.assert_close(out["mask_rsr"], F.interpolate(low, scale_factor=8, mode="bilinear"))


def _row9(model: RSRNet, x: torch.Tensor) -> None:  # full model
    assert isinstance(model.rsr.cell, ConvGRUCell) and model.rsr.use_similarity
    assert model.rsr.upsample_head is not None and model.gate is not None
    assert model.style_head is not None and model.conventional_head is not None


ROW_CHECKS = {1: _row1, 2: _row2, 3: _row3, 4: _row4, 5: _row5, 6: _row6, 7: _row7, 8: _row8, 9: _row9}


@pytest.mark.parametrize("row", sorted(ROW_CHECKS), ids=[f"row{r}" for r in sorted(ROW_CHECKS)])
def test_table2_row_builds_what_the_paper_describes(row):
    torch.manual_seed(20 + row)
    model = RSRNet.from_table2_row(row, backbone="resnet18", iterations=2, decoder_channels=(64, 32, 16, 8))
    assert dict(TABLE2_ROWS[row]) == table2_options(row)
    for key, value in TABLE2_ROWS[row].items():  # the row's options are what the model was built with
        assert model._hub_mixin_config[key] == value
    with torch.no_grad():
        ROW_CHECKS[row](model.eval(), torch.randn(1, 3, 32, 48))


def test_table2_rows_match_the_paper():
    assert set(TABLE2_ROWS) == set(TABLE2_ROW_NAMES) == set(range(1, 10))
    assert TABLE2_ROWS[9] == {}
    # rows 1-3 have no mask combination in Table 2; row 4 averages; rows 5-9 learn G
    assert [TABLE2_ROWS[r].get("combination", "learned") for r in range(1, 10)] == (
        ["decoder"] * 3 + ["average"] + ["learned"] * 5
    )
    for row, words in {3: "similarity", 5: "GRU", 6: "MSM", 7: "F_c", 8: "upsample"}.items():
        assert words in TABLE2_ROW_NAMES[row]
    # every row's name and options appear in RSRNet's docstring table
    doc = RSRNet.__doc__
    for row, options in TABLE2_ROWS.items():
        for key, value in options.items():
            assert f"{key}={value!r}".replace("'", '"') in doc, (row, key)


def test_table2_helpers_refuse_bad_input():
    with pytest.raises(ValueError, match="rows 1-9"):
        table2_options(10)
    with pytest.raises(ValueError, match=r"row 6 .*contradicting"):
        RSRNet.from_table2_row(6, use_similarity=True)
    # repeating a row's own option is allowed
    assert RSRNet.from_table2_row(4, combination="average", backbone="resnet18", iterations=1).gate is None
    with pytest.raises(TypeError):  # the mappings are read-only
        TABLE2_ROWS[6]["use_similarity"] = True


# ---------------------------------------------------------------- M^0 and the residual base


def _first_iteration(rsr: RecurrentSelfReasoning, model_or_rsr, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mask fed to the first iteration, ΔM^1, M^1) from hooks on the module's layers."""
    seen: dict = {}
    handles = [
        rsr.mask_embed.register_forward_pre_hook(lambda m, args: _keep(seen, "m0", args[0].clone())),
        rsr.delta_head.register_forward_hook(lambda m, args, out: _keep(seen, "delta", out.clone())),
        rsr.register_forward_hook(lambda m, args, out: _keep(seen, "m1", out[0].clone())),
    ]
    try:
        with torch.no_grad():
            model_or_rsr(*x)
    finally:
        for h in handles:
            h.remove()
    return seen["m0"], seen["delta"], seen["m1"]


def test_rsrnet_first_iteration_input_is_the_probability_of_the_residual_base():
    # M^1 = σ(Z^0 + ΔM^1), so the base is Z^0 = logit(M^1) − ΔM^1; M^0 must be σ(Z^0), whatever Z^0 is
    torch.manual_seed(15)
    model = _small(iterations=1).double().eval()
    m0, delta, m1 = _first_iteration(model.rsr, model, (torch.randn(2, 3, 32, 48, dtype=torch.float64),))
    base = torch.logit(m1) - delta
    torch.testing.assert_close(m0, torch.sigmoid(base))
    # and it is the paper's "everything is background": f_bg^0 is the global mean by eq. (1) itself
    assert (m0 < model.rsr.threshold).all() and (m0 < 0.02).all()


@pytest.mark.parametrize("residual", ["logits", "probabilities"])
def test_initial_state_is_m0_and_the_base(residual):
    torch.manual_seed(16)
    rsr = RecurrentSelfReasoning(context_dim=8, iterations=1, hidden_dim=8, embed_dim=4, residual=residual).double()
    style, context = torch.randn(2, 8, 4, 5, dtype=torch.float64), torch.randn(2, 8, 4, 5, dtype=torch.float64)
    mask, base = rsr.initial_state(context)
    m0, delta, m1 = _first_iteration(rsr, rsr, (style, context))
    assert torch.equal(m0, mask)
    if residual == "logits":
        assert torch.equal(mask, torch.sigmoid(base))
        torch.testing.assert_close(mask, torch.full_like(mask, 0.01))
        torch.testing.assert_close(m1, torch.sigmoid(base + delta))
    else:
        assert base is mask and not mask.any()  # the paper's M^0 = 0, the base of M^1 = M^0 + ΔM^1
        torch.testing.assert_close(m1, (base + delta).clamp(0, 1))


def test_initial_mask_is_configurable():
    rsr = RecurrentSelfReasoning(context_dim=8, iterations=1, hidden_dim=8, embed_dim=4, initial_mask=0.25)
    mask, base = rsr.initial_state(torch.zeros(1, 8, 2, 2))
    torch.testing.assert_close(mask, torch.full_like(mask, 0.25))
    torch.testing.assert_close(base, torch.full_like(base, math.log(0.25 / 0.75)))


# ---------------------------------------------------------------- equation (1): background feature


def _naive_background(style: torch.Tensor, mask: torch.Tensor, eps: float = 0.5) -> torch.Tensor:
    b, c, h, w = style.shape
    out = torch.zeros(b, c, dtype=style.dtype)
    for n in range(b):
        total, count = torch.zeros(c, dtype=style.dtype), 0
        for i, j in itertools.product(range(h), range(w)):
            if mask[n, 0, i, j] < eps:
                total += style[n, :, i, j]
                count += 1
        out[n] = total / count if count else style[n].reshape(c, -1).mean(dim=1)
    return out


def test_background_feature_matches_eq1():
    g = torch.Generator().manual_seed(5)
    style = torch.randn(3, 6, 5, 7, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 1, 5, 7, generator=g, dtype=torch.float64)
    mask[1] = 0.5  # exactly at the threshold: not background, so no background at all
    mask[2] = 0.0  # the initial all-zero mask: everything is background
    mask[0, 0, 0, :3] = 0.5
    torch.testing.assert_close(background_feature(style, mask), _naive_background(style, mask))
    # the degenerate and the initial case both give the global mean
    torch.testing.assert_close(background_feature(style, mask)[1], style[1].mean(dim=(1, 2)))
    torch.testing.assert_close(background_feature(style, mask)[2], style[2].mean(dim=(1, 2)))


# ---------------------------------------------------------------- equation (2): multi-scale similarity


def _naive_similarity(style: torch.Tensor, f_bg: torch.Tensor, scales) -> torch.Tensor:
    b, c, h, w = style.shape
    out = torch.zeros(b, len(scales), h, w, dtype=style.dtype)
    for n, (k, half), i, j in itertools.product(range(b), enumerate(scales), range(h), range(w)):
        total = torch.zeros(c, dtype=style.dtype)
        for di, dj in itertools.product(range(-half, half + 1), repeat=2):
            if 0 <= i + di < h and 0 <= j + dj < w:
                total += style[n, :, i + di, j + dj]
        out[n, k, i, j] = f_bg[n] @ total / (f_bg[n].norm() * total.norm())
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multiscale_similarity_matches_eq2(dtype):
    g = torch.Generator().manual_seed(6)
    style = torch.randn(2, 5, 6, 7, generator=g, dtype=dtype)
    f_bg = torch.randn(2, 5, generator=g, dtype=dtype)
    scales = (0, 1, 2, 3)
    got = multiscale_similarity(neighbourhood_directions(style, scales), f_bg)
    want = _naive_similarity(style.double(), f_bg.double(), scales).to(dtype)
    assert got.shape == (2, 4, 6, 7)
    assert (got - want).abs().max() <= 1e-5


def test_similarity_only_iterations_match_a_naive_kmeans_loop():
    g = torch.Generator().manual_seed(7)
    style = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    low, ups = SimilarityReasoning(iterations=3, upsample_factor=8)(style)
    mask = torch.zeros(2, 1, 5, 6, dtype=torch.float64)
    for k in range(3):
        f_bg = _naive_background(style, mask)
        mask = (1 - _naive_similarity(style, f_bg, (0,))) / 2
        torch.testing.assert_close(
            ups[k], F.interpolate(mask, scale_factor=8, mode="bilinear", align_corners=False)
        )
    torch.testing.assert_close(low, mask)


# ---------------------------------------------------------------- convex upsampling


def _naive_convex(x: torch.Tensor, weights: torch.Tensor, f: int) -> torch.Tensor:
    b, c, h, w = x.shape
    out = torch.zeros(b, c, h * f, w * f, dtype=x.dtype)
    for n, i, j, a, bb in itertools.product(range(b), range(h), range(w), range(f), range(f)):
        logits = torch.stack([weights[n, k * f * f + a * f + bb, i, j] for k in range(9)])
        p = logits.softmax(0)
        value = torch.zeros(c, dtype=x.dtype)
        for k, (di, dj) in enumerate(itertools.product((-1, 0, 1), repeat=2)):
            ii, jj = min(max(i + di, 0), h - 1), min(max(j + dj, 0), w - 1)  # replicate border
            value += p[k] * x[n, :, ii, jj]
        out[n, :, i * f + a, j * f + bb] = value
    return out


def test_convex_upsample_matches_naive_combination():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 1, 3, 4, generator=g, dtype=torch.float64)
    weights = torch.randn(2, 9 * 4 * 4, 3, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(convex_upsample(x, weights, factor=4), _naive_convex(x, weights, 4))


def test_convex_upsample_weights_are_a_partition_of_unity():
    g = torch.Generator().manual_seed(9)
    weights = 5 * torch.randn(2, 9 * 64, 4, 5, generator=g)
    # weights sum to one: constant maps (ones, any constant) stay constant, borders included
    for value in (1.0, 0.37):
        out = convex_upsample(torch.full((2, 1, 4, 5), value), weights)
        torch.testing.assert_close(out, torch.full((2, 1, 32, 40), value))
    x = torch.rand(2, 1, 4, 5, generator=g)
    out = convex_upsample(x, weights)
    assert out.min() >= x.min() - 1e-6 and out.max() <= x.max() + 1e-6
    assert out.min() >= 0 and out.max() <= 1
    # a dominant weight on one neighbour copies that neighbour (centre: index 4) into the block
    centre = torch.full((2, 9, 8, 8, 4, 5), -1e4)
    centre[:, 4] = 0
    copied = convex_upsample(x, centre.view(2, 576, 4, 5))
    torch.testing.assert_close(copied, x.repeat_interleave(8, -1).repeat_interleave(8, -2))


def test_convex_upsample_rejects_mismatched_weights():
    with pytest.raises(ValueError, match="needs weights of shape"):
        convex_upsample(torch.rand(1, 1, 4, 4), torch.rand(1, 9 * 16, 4, 4), factor=8)


# ---------------------------------------------------------------- GRU


def test_conv_gru_follows_the_paper_update():
    torch.manual_seed(10)
    cell = ConvGRUCell(input_dim=3, hidden_dim=4).double()
    h = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    w, bias = cell.gates.weight, cell.gates.bias
    hx = torch.cat([h, x], 1)
    z = torch.sigmoid(F.conv2d(hx, w[:4], bias[:4], padding=1))
    r = torch.sigmoid(F.conv2d(hx, w[4:], bias[4:], padding=1))
    q = torch.tanh(F.conv2d(torch.cat([r * h, x], 1), cell.candidate.weight, cell.candidate.bias, padding=1))
    torch.testing.assert_close(cell(h, x), (1 - z) * h + z * q)


# ---------------------------------------------------------------- loss recipe (inharmony.losses)


def test_rsrnet_loss_on_model_output():
    torch.manual_seed(11)
    k = 4
    model = _small(iterations=k)
    out = model(torch.randn(2, 3, 32, 32))
    target = (torch.rand(2, 1, 32, 32) > 0.7).float()
    weights = [float(w) for w in losses.rsr_iteration_weights(k, 0.8)]
    assert weights == pytest.approx([0.8 ** (k - i) for i in range(1, k + 1)])
    assert weights[-1] == pytest.approx(1.0) and weights[0] == pytest.approx(0.8**3)
    result = losses.RSRNetLoss()(out, target)
    ell = losses.structure_loss
    want = ell(out["mask"], target) + sum(
        0.8 ** (k - i) * ell(m, target) for i, m in enumerate(out["rsr_masks"], start=1)
    )
    torch.testing.assert_close(result["loss"], want)
    assert math.isfinite(result["loss"].item())
    result["loss"].backward()
    assert model.rsr.delta_head[0].weight.grad is not None
    assert type(losses.loss_for_model("rsrnet")) is losses.RSRNetLoss


def test_rsrnet_loss_on_unet_only_output_is_the_final_term():
    torch.manual_seed(12)
    out = _small(rsr="none", combination="decoder")(torch.randn(1, 3, 32, 32))
    target = (torch.rand(1, 1, 32, 32) > 0.5).float()
    result = losses.RSRNetLoss()(out, target)
    torch.testing.assert_close(result["loss"], losses.structure_loss(out["mask"], target))
    result["loss"].backward()
