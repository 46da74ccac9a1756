"""torch.hub entry points from the local repository (source="local": no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import inharmony
from inharmony import models as hub

REPO = str(Path(__file__).resolve().parents[1])


@pytest.fixture
def github_from_here(monkeypatch):
    """torch.hub.list/help only speak GitHub; serve "inharmony/inharmony" from this checkout instead."""
    monkeypatch.setattr(torch.hub, "_get_cache_or_reload", lambda *args, **kwargs: REPO)


def test_list_shows_every_entry_point_and_no_helpers(github_from_here):
    entries = torch.hub.list("inharmony/inharmony", trust_repo=True)
    assert {"dirl", "dirl_resnet18"} <= set(entries)
    if "rsrnet" in inharmony.list_models():
        assert "rsrnet" in entries
    assert not [name for name in entries if name.startswith("_")]
    assert set(entries) <= set(inharmony.list_models())  # every entry point is a registered model


def test_help_gives_reference_scores(github_from_here):
    text = torch.hub.help("inharmony/inharmony", "dirl", trust_repo=True)
    assert "80.02" in text and "0.7317" in text and "67.85" in text
    assert "pretrained" in text and "weights" in text
    if "rsrnet" in inharmony.list_models():
        text = torch.hub.help("inharmony/inharmony", "rsrnet", trust_repo=True)
        assert "82.57" in text and "0.7607" in text and "71.63" in text


def test_load_dirl_without_weights():
    model = torch.hub.load(REPO, "dirl", source="local", pretrained=False)
    assert isinstance(model, inharmony.models.DIRL) and not model.training
    assert model.encoder.backbone == "resnet34"
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32))["mask"].shape == (1, 1, 32, 32)


@pytest.mark.skipif("rsrnet" not in inharmony.list_models(), reason="RSRNet is not registered in this build")
def test_load_rsrnet_without_weights():
    model = torch.hub.load(REPO, "rsrnet", source="local", pretrained=False, iterations=2)
    assert type(model).__name__ == "RSRNet" and not model.training


def test_entry_points_take_keyword_only_arguments():
    with pytest.raises(TypeError):
        torch.hub.load(REPO, "dirl", True, source="local")


def test_pretrained_true_explains_that_weights_are_unpublished():
    with pytest.raises(inharmony.models.PretrainedWeightsUnavailableError, match="no published weights"):
        torch.hub.load(REPO, "dirl", source="local", pretrained=True)
    with pytest.raises(ValueError, match="not both"):
        torch.hub.load(REPO, "dirl", source="local", pretrained=True, weights="x")


def test_weights_from_a_hub_folder(tmp_path):
    torch.manual_seed(0)
    model = inharmony.create_model("dirl_resnet18", decoder_channels=8).eval()
    folder = hub.save_pretrained(model, tmp_path / "m", model_kwargs={"decoder_channels": 8})
    loaded = torch.hub.load(REPO, "dirl_resnet18", source="local", weights=str(folder))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)["mask"], model(x)["mask"])
