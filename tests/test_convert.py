"""The official-checkpoint converter: file format, key mapping, and the official computation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from inharmony.errors import OfficialCheckpointError
from inharmony.models.converters.official_dirl import dirl_to_official_state_dicts, load_official_dirl
from inharmony.models.dirl import DIRL
from official_dirl_reference import official_dirl_forward

UNUSED_CONV4 = "decoder_layers.deconv.decoder.d0.conv4."
OFFICIAL_PARAMETER_COUNT = 53_471_354  # measured on the authors' code, ResNet34, ggd_ch=32


def _randomise(model: DIRL, seed: int = 0) -> DIRL:
    """Non-trivial BatchNorm statistics and affine weights, so that every buffer matters.

    Running statistics are measured on random images (as training would), so that the eval-mode
    outputs are well scaled rather than saturated at 0 or 1, which would hide differences.
    """
    gen = torch.Generator().manual_seed(seed)
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batchnorms:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.1)
            bn.momentum = None  # cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, 32, 32, generator=gen))
        for bn in batchnorms:
            bn.momentum = 0.1
        # Rescale the 1x1 head so the mask logits spread by about 0.5 (little saturation).
        captured = []
        hook = model.decoder.head.register_forward_hook(lambda _m, _i, out: captured.append(out))
        model.eval()(torch.randn(2, 3, 32, 32, generator=gen))
        hook.remove()
        model.decoder.head.weight.mul_(0.5 / captured[0].std())
        model.decoder.head.bias.zero_()
    return model.eval()


def _official_state(model: DIRL, channels: int = 32) -> tuple[dict, dict]:
    encoder, decoder = dirl_to_official_state_dicts(model)
    # The official decoder also stores the never-used outermost conv (conv + BN).
    decoder[UNUSED_CONV4 + "conv.weight"] = torch.randn(channels, channels, 3, 3)
    for name, value in {
        "weight": torch.ones(channels),
        "bias": torch.zeros(channels),
        "running_mean": torch.zeros(channels),
        "running_var": torch.ones(channels),
        "num_batches_tracked": torch.tensor(0),
    }.items():
        decoder[UNUSED_CONV4 + "norm." + name] = value
    return encoder, decoder


def _scheduler_state() -> dict:
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 40, 50, 55], gamma=0.5)
    return scheduler.state_dict()  # holds a collections.Counter, as the official files do


def _save_official(folder: Path, encoder: dict, decoder: dict, epoch: str = "best", prefix: str = "module.") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in (("encoder", encoder), ("decoder", decoder)):
        payload = {
            "epoch": 60,
            "best_acc": 0.6785,
            "state_dict": {prefix + k: v for k, v in state.items()},
            "opt": _scheduler_state(),
        }
        torch.save(payload, folder / f"{name}_epoch{epoch}.pth")


@pytest.fixture(scope="module")
def official_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DIRL, dict]:
    torch.manual_seed(0)
    model = _randomise(DIRL())
    encoder, decoder = _official_state(model)
    folder = tmp_path_factory.mktemp("official")
    _save_official(folder, encoder, decoder)
    return folder, model, {**encoder, **decoder}


def test_parameter_count_equals_official(official_run: tuple[Path, DIRL, dict]) -> None:
    _, model, official = official_run
    ours = sum(p.numel() for p in model.parameters())
    # We leave out the official outermost GGD conv (its forward never calls it); add its
    # parameters (3x3 conv without bias + BN affine) back to compare with the official count.
    unused = sum(
        official[UNUSED_CONV4 + k].numel() for k in ("conv.weight", "norm.weight", "norm.bias")
    )
    assert unused == 32 * 32 * 9 + 2 * 32
    assert ours + unused == OFFICIAL_PARAMETER_COUNT


def test_round_trip_restores_every_tensor(official_run: tuple[Path, DIRL, dict]) -> None:
    folder, model, _ = official_run
    loaded = load_official_dirl(folder, epoch="best")
    assert not loaded.training
    expected = model.state_dict()
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_converted_model_matches_official_computation(
    official_run: tuple[Path, DIRL, dict], size: tuple[int, int]
) -> None:
    folder, _, official = official_run
    loaded = load_official_dirl(folder)
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    ref_mask, ref_maps = official_dirl_forward(official, x)
    with torch.no_grad():
        out = loaded(x)
    # The comparison means something only if the outputs are not saturated.
    assert ((ref_mask > 0.01) & (ref_mask < 0.99)).float().mean().item() > 0.25
    assert (out["mask"] - ref_mask).abs().max().item() <= 1e-5
    # Ours are ordered finest level first; the official list is coarsest first.
    for ours, ref in zip(out["attention"], reversed(ref_maps), strict=True):
        assert ours.shape == ref.shape == (2, 1, *size)
        assert (ours - ref).abs().max().item() <= 1e-5


def test_reference_is_sensitive_to_weights(official_run: tuple[Path, DIRL, dict]) -> None:
    """Guards the comparison above: a changed official weight must change the reference output."""
    _, _, official = official_run
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    base, _ = official_dirl_forward(official, x)
    changed = dict(official)
    key = "decoder_layers.deconv.decoder.d1.conv_cat.conv.weight"
    changed[key] = official[key] * 1.5
    other, _ = official_dirl_forward(changed, x)
    assert (base - other).abs().max().item() > 1e-4


def test_plain_state_dicts_without_prefix_load(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    _, model, _ = official_run
    encoder, decoder = dirl_to_official_state_dicts(model)
    torch.save(encoder, tmp_path / "encoder_epoch60.pth")
    torch.save(decoder, tmp_path / "decoder_epoch60.pth")
    loaded = load_official_dirl(tmp_path, epoch=60)
    key = "decoder.head.weight"
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])


def test_missing_decoder_file_is_named(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    folder, _, _ = official_run
    (tmp_path / "encoder_epochbest.pth").write_bytes((folder / "encoder_epochbest.pth").read_bytes())
    with pytest.raises(OfficialCheckpointError, match=r"decoder_epochbest\.pth"):
        load_official_dirl(tmp_path)


def test_corrupt_file_is_named(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    folder, _, _ = official_run
    (tmp_path / "encoder_epochbest.pth").write_bytes((folder / "encoder_epochbest.pth").read_bytes())
    data = (folder / "decoder_epochbest.pth").read_bytes()
    (tmp_path / "decoder_epochbest.pth").write_bytes(data[: len(data) // 3])  # truncated download
    with pytest.raises(OfficialCheckpointError, match=r"decoder_epochbest\.pth.*corrupt"):
        load_official_dirl(tmp_path)


def test_wrong_shape_names_file_and_key(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    _, model, _ = official_run
    encoder, decoder = _official_state(model)
    decoder["trans.im2.m_concat.conv.weight"] = torch.zeros(32, 256, 1, 1)
    _save_official(tmp_path, encoder, decoder)
    with pytest.raises(OfficialCheckpointError) as info:
        load_official_dirl(tmp_path)
    message = str(info.value)
    assert "trans.im2.m_concat.conv.weight" in message
    assert "decoder_epochbest.pth" in message
    assert "(32, 256, 1, 1)" in message


def test_missing_and_unexpected_keys_are_named(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    _, model, _ = official_run
    encoder, decoder = _official_state(model)
    del encoder["encoder3.2.bn1.running_var"]
    decoder["attention_layers.mda_5.ChannelGate.conv.weight"] = torch.zeros(1, 1, 3)
    _save_official(tmp_path, encoder, decoder)
    with pytest.raises(OfficialCheckpointError) as info:
        load_official_dirl(tmp_path)
    message = str(info.value)
    assert "missing key 'encoder3.2.bn1.running_var' in" in message
    assert "encoder_epochbest.pth" in message
    assert "unexpected key 'attention_layers.mda_5.ChannelGate.conv.weight'" in message


def test_objects_outside_the_format_are_refused(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    _, model, _ = official_run
    encoder, decoder = _official_state(model)
    _save_official(tmp_path, encoder, decoder)
    torch.save({"state_dict": decoder, "opt": argparse.Namespace(lr=1)}, tmp_path / "decoder_epochbest.pth")
    with pytest.raises(OfficialCheckpointError, match="weights_only"):
        load_official_dirl(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(OfficialCheckpointError, match="not a directory"):
        load_official_dirl(tmp_path / "nowhere")


def test_load_chooses_the_epoch_of_the_authors_folder(tmp_path: Path, official_run: tuple[Path, DIRL, dict]) -> None:
    import inharmony

    _, model, _ = official_run
    encoder, decoder = _official_state(model)
    _save_official(tmp_path, encoder, decoder, epoch="60")
    loaded = inharmony.load("dirl", weights=tmp_path, epoch=60)
    key = "decoder.head.weight"
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])
    with pytest.raises(OfficialCheckpointError, match=r"Choose the epoch with epoch="):
        inharmony.load("dirl", weights=tmp_path)  # "best" is not there


def test_load_refuses_an_epoch_for_other_weights(tmp_path: Path) -> None:
    import inharmony

    folder = inharmony.create_model("dirl_resnet18", decoder_channels=8).save_pretrained(tmp_path / "hub")
    with pytest.raises(ValueError, match="authors' checkpoint folder"):
        inharmony.load("dirl_resnet18", weights=folder, epoch=60)
    with pytest.raises(ValueError, match="no weights= was given"):
        inharmony.load("dirl", epoch="best")
