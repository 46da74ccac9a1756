"""MadisNet converters: the authors' and libcom's file formats, key mapping, and the authors' computation.

Random weights are written in exactly the authors' formats (``{epoch, best_acc, state_dict, opt}``
with a ``MultiStepLR`` state holding a ``collections.Counter``) into temporary folders, loaded
through :func:`inharmony.load`, and compared with ``official_madisnet_reference``: a functional
restatement of the authors' forward pass that reads their key layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import inharmony
from inharmony.errors import OfficialCheckpointError
from inharmony.models.converters import find_converter
from inharmony.models.converters.madisnet import (
    UNUSED_OFFICIAL_PREFIX,
    convert_madisnet,
    load_madisnet,
    madisnet_files,
    official_key,
    to_official_state_dicts,
)
from official_madisnet_reference import official_madisnet_forward, official_unet_forward

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-5
AUTHORS_G_DIRL = 53_471_354  # measured on the authors' DIRLNet (ResNet34, ggd_ch=32, mda_mode="mask"): "53.47M"
AUTHORS_IHDRNET = 1_472_226  # the authors' HDRPointwiseNN as libcom configures it: "1.47M"
AUTHORS_UNET = 56_720_193  # the authors' UNet(in_ch=3, n_downs=5)


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine weights, a non-zero attention γ, logits that do not saturate."""
    gen = torch.Generator().manual_seed(seed)
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batchnorms:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
            bn.momentum = None  # cumulative average over the calibration batches
        for name, param in model.named_parameters():
            if name.endswith("attention.gamma"):
                param.fill_(0.7)  # zero at initialisation, which would hide the self-attention
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, 32, 32, generator=gen))
        for bn in batchnorms:
            bn.momentum = 0.1
        head = model.localizer.decoder.head if hasattr(model.localizer, "decoder") else model.localizer.head
        captured = []
        hook = head.register_forward_hook(lambda _m, _i, out: captured.append(out))
        model.eval()(torch.randn(2, 3, 32, 32, generator=gen))
        hook.remove()
        head.weight.mul_(0.5 / captured[0].std())
        head.bias.zero_()
    return model.eval()


def scheduler_state() -> dict:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 40, 50, 55], gamma=0.5)
    return scheduler.state_dict()  # holds a collections.Counter, as the authors' and libcom's files do


def save_authors_file(path: Path, state: dict, prefix: str = "") -> None:
    payload = {"epoch": 59, "best_acc": 0.7651, "state_dict": {prefix + k: v for k, v in state.items()},
               "opt": scheduler_state()}  # fmt: skip
    torch.save(payload, path)


def official_states(model: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """Our weights in the authors' layout, with the never-used conv4 the authors' DIRL stores."""
    states = to_official_state_dicts(model)
    if getattr(model, "localizer_name", "") == "dirl":
        states["g"][UNUSED_OFFICIAL_PREFIX + "conv.weight"] = torch.randn(32, 32, 3, 3)
        for name, value in {"weight": torch.ones(32), "bias": torch.zeros(32), "running_mean": torch.zeros(32),
                            "running_var": torch.ones(32), "num_batches_tracked": torch.tensor(0)}.items():  # fmt: skip
            states["g"][UNUSED_OFFICIAL_PREFIX + "norm." + name] = value
    return states


def write_authors_folder(folder: Path, states: dict, epoch: str = "best", prefix: str = "module.") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for role, state in states.items():
        save_authors_file(folder / f"{role}_epoch{epoch}.pth", state, prefix)
    domain = {"adaptor1.conv.weight": torch.randn(16, 64, 1, 1), "weight": torch.ones(3)}  # training only
    save_authors_file(folder / f"domain_encoder_epoch{epoch}.pth", domain, prefix)
    return folder


def write_libcom_folder(folder: Path, states: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_authors_file(folder / "Inharmonious_G.pth", states["g"])
    save_authors_file(folder / "IHDRNet.pth", states["ihdrnet"])
    return folder


@pytest.fixture(scope="module")
def dirl_run(tmp_path_factory) -> tuple[Path, Path, torch.nn.Module, dict]:
    torch.manual_seed(0)
    model = randomise(inharmony.create_model("madisnet"))
    states = official_states(model)
    root = tmp_path_factory.mktemp("madisnet")
    return write_authors_folder(root / "dirl", states), write_libcom_folder(root / "libcom", states), model, states


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory) -> tuple[Path, torch.nn.Module, dict]:
    torch.manual_seed(1)
    model = randomise(inharmony.create_model("madisnet_unet"), seed=1)
    states = official_states(model)
    return write_authors_folder(tmp_path_factory.mktemp("madisnet") / "unet", states), model, states


@pytest.fixture(scope="module")
def loaded(dirl_run, unet_run) -> dict[str, torch.nn.Module]:
    """Each folder loaded once through inharmony.load (converter detection included)."""
    return {
        "authors": inharmony.load("madisnet", weights=dirl_run[0]),
        "libcom": inharmony.load("madisnet", weights=dirl_run[1]),
        "unet": inharmony.load("madisnet_unet", weights=unet_run[0]),
    }


def _x(*shape: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- parameter counts


def test_parameter_counts_equal_the_authors(dirl_run, unet_run) -> None:
    _, _, model, states = dirl_run
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert count(model.ihdrnet) == AUTHORS_IHDRNET
    unused = sum(v.numel() for k, v in states["g"].items() if k.startswith(UNUSED_OFFICIAL_PREFIX)
                 and not k.endswith(("running_mean", "running_var", "num_batches_tracked")))  # fmt: skip
    assert unused == 32 * 32 * 9 + 2 * 32  # the authors' conv4, built and never called
    assert count(model.localizer) + unused == AUTHORS_G_DIRL
    assert count(unet_run[1].localizer) == AUTHORS_UNET
    with torch.device("meta"):  # counting needs no initialisation
        assert count(inharmony.create_model("unet")) == AUTHORS_UNET


# --------------------------------------------------------------------------- the authors' computation


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 3, 64, 96)])
def test_authors_folder_matches_the_authors_computation(dirl_run, loaded, shape) -> None:
    _, _, _, states = dirl_run
    model = loaded["authors"]
    assert not model.training and model.pretrained_cfg.architecture == "madisnet"
    x = _x(*shape)
    with torch.no_grad():
        ours = model(x)
    ref = official_madisnet_forward(states["g"], states["ihdrnet"], x)
    assert float(ref["mask"].std()) > 0.05  # not saturated: differences would show
    assert (ours["mask"] - ref["mask"]).abs().max() <= TOL
    assert (ours["retouched"] - ref["retouched"]).abs().max() <= TOL
    for got, expected in zip(ours["attention"], ref["attention"][::-1], strict=True):  # theirs: coarsest first
        assert (got - expected).abs().max() <= TOL


def test_libcom_folder_matches_the_authors_computation(dirl_run, loaded) -> None:
    _, folder, _, states = dirl_run
    assert find_converter(str(folder)).name == "madisnet-libcom"
    model = loaded["libcom"]
    x = _x(1, 3, 64, 64, seed=4)
    with torch.no_grad():
        mask = model(x)["mask"]
    assert (mask - official_madisnet_forward(states["g"], states["ihdrnet"], x)["mask"]).abs().max() <= TOL


def test_unet_folder_matches_the_authors_computation(unet_run, loaded) -> None:
    folder, _, states = unet_run
    assert find_converter(str(folder)).name == "madisnet-official"
    model = loaded["unet"]
    x = _x(1, 3, 64, 64, seed=5)
    with torch.no_grad():
        out = model(x)
    ref = official_madisnet_forward(states["g"], states["ihdrnet"], x, localizer="unet")
    assert float(ref["mask"].std()) > 0.05
    assert (out["mask"] - ref["mask"]).abs().max() <= TOL
    assert set(out) == {"mask", "retouched"}


def test_bare_unet_matches_the_authors_unet(unet_run, tmp_path) -> None:
    _, _, states = unet_run
    folder = tmp_path / "unet_only"
    folder.mkdir()
    save_authors_file(folder / "g_epochbest.pth", states["g"], "module.")
    model = inharmony.load("unet", weights=folder)
    x = _x(1, 3, 64, 64, seed=6)
    with torch.no_grad():
        assert (model(x)["mask"] - official_unet_forward(states["g"], x)).abs().max() <= TOL
    # Non-square: the authors resize the logits to (W, H); ours keeps (H, W) and equals theirs transposed back.
    x = _x(1, 3, 64, 96, seed=7)
    with torch.no_grad():
        assert model(x)["mask"].shape == (1, 1, 64, 96)


def test_reference_is_sensitive_to_every_part(dirl_run) -> None:
    """The comparison can fail: changing a weight of iHDRNet or of the localizer changes the reference mask."""
    _, _, _, states = dirl_run
    x = _x(1, 3, 64, 64, seed=8)
    base = official_madisnet_forward(states["g"], states["ihdrnet"], x)["mask"]
    for role, key in [("ihdrnet", "coeffs.conv_out.conv.weight"), ("ihdrnet", "coeffs.sa.gamma"),
                      ("g", "decoder.trans.im2.m_concat.conv.weight")]:  # fmt: skip
        changed = {k: v.clone() for k, v in states[role].items()}
        changed[key].mul_(1.5)
        g, ihdrnet = (changed, states["ihdrnet"]) if role == "g" else (states["g"], changed)
        assert (official_madisnet_forward(g, ihdrnet, x)["mask"] - base).abs().max() > 1e-4, key


def test_round_trip_restores_every_tensor(dirl_run, loaded) -> None:
    model = dirl_run[2]
    got = loaded["authors"].state_dict()
    assert got.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(got[key], value), key


def test_every_key_has_an_official_name(dirl_run, unet_run) -> None:
    for model in (dirl_run[2], unet_run[1]):
        names = [official_key(k, model.localizer_name) for k in model.state_dict()]
        assert len(set(names)) == len(names)
    assert official_key("ihdrnet.guide.bn1.running_var") == ("ihdrnet", "guide.conv1.norm.running_var")
    assert official_key("head.bias", "unet") == ("g", "out_conv.0.bias")


# --------------------------------------------------------------------------- errors name the file and key


def test_missing_ihdrnet_file_is_named(dirl_run, tmp_path) -> None:
    folder, _, _, _ = dirl_run
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "g_epochbest.pth").write_bytes((folder / "g_epochbest.pth").read_bytes())
    with pytest.raises(OfficialCheckpointError, match=r"no iHDRNet file \(ihdrnet_epochbest\.pth"):
        inharmony.load("madisnet", weights=partial)
    with pytest.raises(OfficialCheckpointError, match=r"missing .*g_epoch60\.pth.*g_epochbest\.pth"):
        madisnet_files(partial, epoch=60)


def test_wrong_shape_names_file_and_key(dirl_run, tmp_path) -> None:
    states = dirl_run[3]
    ihdrnet = dict(states["ihdrnet"])
    ihdrnet["coeffs.sa.query_conv.weight"] = torch.zeros(8, 128, 1, 1)
    folder = tmp_path / "bad"
    folder.mkdir()
    os.link(dirl_run[0] / "g_epochbest.pth", folder / "g_epochbest.pth")
    save_authors_file(folder / "ihdrnet_epochbest.pth", ihdrnet, "module.")
    expected = r"'coeffs\.sa\.query_conv\.weight' in .*ihdrnet_epochbest\.pth has shape \(8, 128, 1, 1\), expected \(16"
    with pytest.raises(OfficialCheckpointError, match=expected):
        inharmony.load("madisnet", weights=folder)


def test_missing_and_unexpected_keys_are_named(dirl_run, tmp_path) -> None:
    _, _, _, states = dirl_run
    g = dict(states["g"])
    del g["decoder.decoder_layers.deconv.decoder.d0.conv5.bias"]
    g["decoder.extra.weight"] = torch.zeros(1)
    folder = tmp_path / "bad"
    folder.mkdir()
    os.link(dirl_run[1] / "IHDRNet.pth", folder / "IHDRNet.pth")
    save_authors_file(folder / "Inharmonious_G.pth", g)
    with pytest.raises(OfficialCheckpointError) as info:
        inharmony.load("madisnet", weights=folder)
    message = str(info.value)
    assert "missing key 'decoder.decoder_layers.deconv.decoder.d0.conv5.bias'" in message
    assert "unexpected key 'decoder.extra.weight'" in message and "Inharmonious_G.pth" in message


def test_objects_outside_the_format_are_refused(dirl_run, tmp_path) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(1)}, "opt": Path("x")}, folder / "Inharmonious_G.pth")
    with pytest.raises(OfficialCheckpointError, match="weights_only=True"):
        inharmony.load("madisnet", weights=folder)
    (folder / "Inharmonious_G.pth").write_bytes(b"not a checkpoint")  # named for what it is (was "corrupt")
    with pytest.raises(OfficialCheckpointError, match=r"Inharmonious_G\.pth: it is a text file, not a PyTorch"):
        inharmony.load("madisnet", weights=folder)
    data = (dirl_run[1] / "Inharmonious_G.pth").read_bytes()
    (folder / "Inharmonious_G.pth").write_bytes(data[: len(data) // 3])  # a truncated download
    with pytest.raises(OfficialCheckpointError, match=r"Inharmonious_G\.pth.*corrupt or truncated"):
        inharmony.load("madisnet", weights=folder)


def test_architecture_must_match_the_files(dirl_run, unet_run) -> None:
    with pytest.raises(OfficialCheckpointError, match="holds 'madisnet', not 'madisnet_unet'"):
        inharmony.load("madisnet_unet", weights=dirl_run[0])
    with pytest.raises(OfficialCheckpointError, match=r"holds 'madisnet_unet', not 'unet'.*retouched"):
        inharmony.load("unet", weights=unet_run[0])
    with pytest.raises(OfficialCheckpointError, match="not 'dirl'"):
        load_madisnet(dirl_run[0], "dirl")


def test_convert_writes_a_hub_folder(dirl_run, tmp_path, capsys) -> None:
    _, libcom, model, _ = dirl_run
    out = tmp_path / "hub"
    assert convert_madisnet(str(libcom), str(out)) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = inharmony.from_pretrained(out)
    x = _x(1, 3, 64, 64, seed=9)
    with torch.no_grad():
        assert torch.equal(loaded(x)["mask"], model(x)["mask"])
    assert "Libcom" in (out / "README.md").read_text()
    with pytest.raises(FileExistsError, match="not empty"):
        convert_madisnet(str(libcom), str(out))
