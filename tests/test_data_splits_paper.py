"""The paper configs' data recipe (issue #11): the whole le50 train list, the authors' seed, drop_last,
crop redraw and model selection; the authors' validation protocol (a random share of the train list)."""

from __future__ import annotations

import pytest
import yaml

from inharmony.cli import main
from inharmony.data import IHarmony4DataModule, build_index
from inharmony.data.splits import sample_fraction


def _printed_config(config: str, root, capsys) -> dict:
    argv = ["fit", "--config", config, "--data.root", str(root), "--print_config"]
    assert main([*argv, "--model.model_kwargs.pretrained_backbone", "false"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("config", ["configs/dirl.yaml", "configs/rsrnet.yaml"])
def test_paper_config_trains_on_the_whole_le50_list_with_the_authors_recipe(
    config, fake_ihd, fake_ihd_spec, capsys, monkeypatch
):
    printed = _printed_config(config, fake_ihd, capsys)
    assert printed["seed_everything"] == 42
    data = printed["data"]["init_args"]
    assert data["validation"] == "authors" and data["val_fraction"] == 0.1
    assert data["drop_last"] is True and data["le50"] is True and data["train_list"] is None
    assert (data["crop_min_foreground"], data["crop_keep_prob"]) == (10.0, 0.05)
    assert data["eval_pixels"] == "official" and tuple(data["crop_scale"]) == (0.9, 1.0)
    # The recipe on a small tree: every le50 training composite is trained on.
    monkeypatch.setenv("PL_GLOBAL_SEED", "42")  # what seed_everything(42) sets
    dm = IHarmony4DataModule(**{**data, "num_workers": 0, "image_size": 32, "batch_size": 4})
    dm.setup("fit")
    assert dm.seed == 42
    want = sorted(p.path for p in fake_ihd_spec if p.split == "train" and p.fg_fraction <= 0.5)
    assert sorted(s.composite for s in dm.train_dataset.samples) == want
    assert sorted((fake_ihd / "le50_train.txt").read_text().split()) == want  # = the published list's format
    val = {s.composite for s in dm.val_dataset.samples}
    assert val and val <= set(want)
    loader = dm.train_dataloader()
    assert loader.drop_last and len(loader) == len(want) // 4


def test_sample_fraction_is_seeded_order_free_and_overlapping(fake_ihd):
    samples = build_index(fake_ihd, "train")
    picked = sample_fraction(samples, 0.25, seed=42)
    assert len(picked) == round(0.25 * len(samples))
    assert [s.composite for s in picked] == [s.composite for s in samples if s in set(picked)]  # list order kept
    assert {s.composite for s in sample_fraction(list(reversed(samples)), 0.25, seed=42)} == {
        s.composite for s in picked
    }
    assert len({frozenset(s.composite for s in sample_fraction(samples, 0.25, seed)) for seed in range(8)}) > 1
    assert sample_fraction(samples, 0.0) == [] and len(sample_fraction(samples, 0.01)) == 1
    with pytest.raises(ValueError, match="val_fraction"):
        sample_fraction(samples, 1.0)
