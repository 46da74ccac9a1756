"""``create_model("madisnet", pretrained=True)``: libcom's two files from a Hugging Face cache, offline.

The tag names its files' format (``weights_format="madisnet-libcom"``); the builder hands them to that
converter's :func:`~inharmony.models.converters.madisnet.load_libcom_weights`.

The test lays out a Hugging Face cache holding ``Inharmonious_G.pth`` and ``IHDRNet.pth`` in libcom's
exact format (random weights) and sets ``HF_HUB_OFFLINE=1``: the download, the conversion, the cache
of the converted safetensors and the offline failure are exercised without a network.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import inharmony
from inharmony.errors import HubUnreachableError
from inharmony.models.converters import madisnet
from inharmony.models.converters.madisnet import LIBCOM_FILES, load_libcom_weights, to_official_state_dicts
from inharmony.models.madisnet import LIBCOM_REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _scheduler_state() -> dict:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 40, 50, 55], gamma=0.5).state_dict()


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A Hugging Face cache with libcom's two files (refs/main → a snapshot named by its commit)."""
    torch.manual_seed(0)
    model = inharmony.create_model("madisnet").eval()
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    cache = tmp_path_factory.mktemp("hf_cache")
    repo = cache / ("models--" + LIBCOM_REPO.replace("/", "--"))
    snapshot = repo / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    states = to_official_state_dicts(model)
    for role, name in LIBCOM_FILES.items():
        payload = {"epoch": 59, "best_acc": 0.7651, "state_dict": states[role], "opt": _scheduler_state()}
        torch.save(payload, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return cache, model


@pytest.fixture
def offline(monkeypatch, published) -> Path:
    cache, _ = published
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def _mask(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)["mask"]


def test_published_files_load_convert_and_cache(offline, published, monkeypatch) -> None:
    _, expected = published
    model = inharmony.create_model("madisnet", pretrained=False)
    load_libcom_weights(model, inharmony.get_pretrained_cfg("madisnet"))
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(_mask(model.eval(), x), _mask(expected, x))
    assert model.pretrained_cfg.revision == SHA  # the commit the files came from is recorded
    converted = list((offline / "inharmony-converted").rglob("*.safetensors"))
    assert len(converted) == 1 and converted[0].name.startswith("madisnet-")

    def no_second_conversion(*_args, **_kwargs):
        raise AssertionError("converted again instead of using the cached safetensors")

    monkeypatch.setattr(madisnet, "read_official_checkpoint", no_second_conversion)
    again = inharmony.create_model("madisnet")
    load_libcom_weights(again, inharmony.get_pretrained_cfg("madisnet"))
    assert torch.equal(_mask(again.eval(), x), _mask(expected, x))


def test_one_line_pretrained(offline, published) -> None:
    _, expected = published
    x = torch.randn(1, 3, 64, 64)
    for model in (inharmony.create_model("madisnet", pretrained=True).eval(), inharmony.load("madisnet")):
        assert torch.equal(_mask(model, x), _mask(expected, x))
        assert model.pretrained_cfg.hf_hub_id == LIBCOM_REPO and model.pretrained_cfg.revision == SHA


def test_offline_without_the_files_fails_fast_saying_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    model = inharmony.create_model("madisnet")
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as info:
        load_libcom_weights(model, inharmony.get_pretrained_cfg("madisnet"))
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    for needed in (LIBCOM_REPO, "Inharmonious_G.pth", "IHDRNet.pth", "HF_HUB_OFFLINE",
                   "inharmony convert madisnet-libcom --dir", "inharmony.load('madisnet', weights="):  # fmt: skip
        assert needed in message, needed


def test_one_line_offline_failure(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(HubUnreachableError, match=r"Inharmonious_G\.pth and IHDRNet\.pth"):
        inharmony.create_model("madisnet", pretrained=True)


def test_unet_variants_have_no_published_files() -> None:
    with pytest.raises(inharmony.models.PretrainedWeightsUnavailableError, match="madisnet_unet"):
        inharmony.create_model("madisnet_unet", pretrained=True)
