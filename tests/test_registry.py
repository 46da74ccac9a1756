"""Registry, encoder, weight loading and the rule that models/ needs only torch and timm."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

import inharmony
from inharmony.errors import CheckpointError, HubUnreachableError
from inharmony.models import (
    PretrainedCfg,
    PretrainedWeightsUnavailableError,
    ResNetEncoder,
    list_pretrained,
    register_model,
)

MODELS_DIR = Path(inharmony.__file__).parent / "models"


def test_create_model_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'dril'.*dirl"):
        inharmony.create_model("dril")


def test_unknown_tag_lists_known_tags() -> None:
    with pytest.raises(ValueError, match=r"no weight tag 'coco'.*ihd_le50"):
        inharmony.create_model("dirl.coco")


def test_tagged_name_builds_the_architecture() -> None:
    model = inharmony.create_model("dirl.ihd_le50", decoder_channels=8)
    assert model.pretrained_cfg.name == "dirl.ihd_le50"
    assert "dirl.ihd_le50" in list_pretrained("dirl*")


def test_pretrained_without_published_weights_says_what_to_do() -> None:
    expected = r"no published weights for 'dirl\.ihd_le50'.*from_pretrained\('path/to/hub_folder'\)"
    with pytest.raises(PretrainedWeightsUnavailableError, match=expected):
        inharmony.create_model("dirl", pretrained=True)


def test_list_models_filters() -> None:
    assert inharmony.list_models("dirl*")[0] == "dirl"
    assert inharmony.list_models("nothing*") == []


def test_register_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(lambda **_: nn.Identity(), name="dirl")


def test_register_with_mismatched_cfg_is_refused() -> None:
    with pytest.raises(ValueError, match="names architecture"):
        register_model(lambda **_: nn.Identity(), name="other_net", pretrained_cfgs=[PretrainedCfg("dirl")])


def test_checkpoint_path_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = inharmony.create_model("dirl_resnet18", decoder_channels=8)
    path = tmp_path / "weights.pt"
    torch.save({"module." + k: v for k, v in source.state_dict().items()}, path)
    loaded = inharmony.create_model("dirl_resnet18", decoder_channels=8, checkpoint_path=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_checkpoint_of_other_shape_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "narrow.pt"
    torch.save(inharmony.create_model("dirl_resnet18", decoder_channels=8).state_dict(), path)
    expected = (
        r"narrow\.pt does not fit DIRL: wrong shapes.*"
        r"attention\.0\.spatial\.project\.conv\.weight: checkpoint \(1, 8, 7, 7\) vs model \(1, 16, 7, 7\)"
    )
    with pytest.raises(CheckpointError, match=expected):
        inharmony.create_model("dirl_resnet18", decoder_channels=16, checkpoint_path=str(path))


def test_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*broken\.pt"):
        inharmony.create_model("dirl", checkpoint_path=str(path))


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34"])
def test_encoder_strides_and_channels(backbone: str) -> None:
    encoder = ResNetEncoder(backbone)
    feats = encoder(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [(f.shape[2], f.shape[3]) for f in feats] == [(64 // s, 96 // s) for s in (1, 2, 4, 8, 16)]
    # The stem is a 3x3 stride-1 conv with bias (not ResNet's 7x7 stride-2 one).
    assert encoder.stem_conv.kernel_size == (3, 3) and encoder.stem_conv.stride == (1, 1)
    assert encoder.stem_conv.bias is not None


def test_encoder_reuses_timm_resnet_layers() -> None:
    encoder = ResNetEncoder("resnet34")
    reference = timm.create_model("resnet34", pretrained=False)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        ours = {k: tuple(v.shape) for k, v in getattr(encoder, name).state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in getattr(reference, name).state_dict().items()}
        assert ours == theirs, name


def test_narrow_encoder_has_the_asked_widths_at_every_layer() -> None:
    widths = (16, 32, 64, 128)
    encoder = ResNetEncoder("resnet18", widths=widths)
    feats = encoder(torch.randn(2, 3, 32, 48))
    assert encoder.channels == (16, 32, 64, 128, 128)
    assert [f.shape[1] for f in feats] == list(encoder.channels)
    assert [(f.shape[2], f.shape[3]) for f in feats] == [(32 // s, 48 // s) for s in (1, 2, 4, 8, 16)]
    assert encoder.stem_conv.out_channels == 16
    # ResNet18's block counts, each block as wide as its layer, layer1 fed by the stem's 16 channels
    layers = [encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4, encoder.layer5]
    assert [len(layer) for layer in layers] == [2, 2, 2, 2, 3]
    assert encoder.layer1[0].conv1.in_channels == 16
    for layer, width in zip(layers, encoder.channels, strict=True):
        assert all(block.conv2.out_channels == width for block in layer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"widths": (16, 32, 64, 128), "pretrained_backbone": True}, r"ImageNet weights exist only for the widths"),
        ({"widths": (15, 32, 64, 128)}, r"the first even"),
        ({"widths": (16, 32, 64)}, r"four channel counts"),
    ],
)
def test_narrow_encoder_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResNetEncoder("resnet18", **kwargs)


def test_dirl_tiny_is_dirl_at_a_quarter_width() -> None:
    tiny = inharmony.create_model("dirl_tiny")
    full = inharmony.create_model("dirl_resnet18")
    assert type(tiny) is type(full)
    assert tiny.encoder.channels == (16, 32, 64, 128, 128)
    assert tiny.decoder.head.in_channels == 16
    # every block of the paper's network is there, only narrower
    assert [type(m).__name__ for m in tiny.modules()] == [type(m).__name__ for m in full.modules()]
    assert sum(p.numel() for p in tiny.parameters()) < 0.1 * sum(p.numel() for p in full.parameters())
    out = tiny(torch.randn(2, 3, 32, 32))
    assert out["mask"].shape == (2, 1, 32, 32) and len(out["attention"]) == 5


def test_backbone_weights_from_local_file(tmp_path: Path) -> None:
    torch.manual_seed(5)
    reference = timm.create_model("resnet34", pretrained=False)
    path = tmp_path / "resnet34.pth"
    torch.save(reference.state_dict(), path)
    encoder = ResNetEncoder("resnet34", pretrained_backbone=str(path))
    assert torch.equal(encoder.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)


def test_unsupported_backbone() -> None:
    with pytest.raises(ValueError, match=r"unsupported backbone 'resnet50'"):
        ResNetEncoder("resnet50")


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_OFFLINE": "1"},
        # Nothing listens on the discard port of loopback: the probe is refused at once.
        {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"},
    ],
)
def test_pretrained_backbone_offline_fails_fast(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start = time.monotonic()
    with pytest.raises(HubUnreachableError) as info:
        inharmony.create_model("dirl", pretrained_backbone=True)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "timm/resnet34.tv_in1k" in message
    assert "pretrained_backbone='path/to/resnet34.tv_in1k.safetensors'" in message
    assert "HF_HOME" in message


def test_list_models_filters_by_task():
    localizers = inharmony.list_models(task="localization")
    harmonizers = inharmony.list_models(task="harmonization")
    assert {"dirl", "rsrnet", "madisnet"} <= set(localizers)
    assert {"s2am", "s2am_maskfree"} <= set(harmonizers)
    assert not set(localizers) & set(harmonizers)
    scorers = inharmony.list_models(task="harmony_score")
    assert scorers == ["bargainnet"] and "pctnet" in harmonizers
    assert sorted(localizers + harmonizers + scorers) == inharmony.list_models()
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        inharmony.list_models(task="segmentation")
