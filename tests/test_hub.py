"""Hugging Face Hub format: round trips, offline cache, model card, bad folders, Lightning checkpoints.

Nothing here touches the network: Hub ids are served from a cache laid out by the tests, with
``HF_HUB_OFFLINE=1``; uploads are exercised up to the point where they would connect.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import inharmony
from inharmony import models as hub
from inharmony.errors import CheckpointError, HubConfigError, HubUnreachableError
from inharmony.models import DIRL, HubMixin
from inharmony.models.converters.lightning import load_lightning_checkpoint

TINY = {"decoder_channels": 8}
SHA = "0123456789abcdef0123456789abcdef01234567"  # a commit hash, as the cache names snapshots
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomise_bn(model: torch.nn.Module) -> torch.nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def tiny():
    return _randomise_bn(inharmony.create_model("dirl_resnet18", **TINY))


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "dirl18"
    metrics = {
        "HCOCO": {"ap": 0.8123, "f1": 0.7011, "iou": 0.6502},
        "Hday2night": {"ap": 0.6, "f1": 0.5, "iou": 0.4},
        "All": {"ap": 0.7999, "f1": 0.6912, "iou": 0.6333},
    }
    hub.save_pretrained(tiny, folder, model_kwargs=TINY, metrics=metrics)
    return folder


def _mask(model, x):
    with torch.no_grad():
        return model(x)["mask"]


def _lay_out_cache(cache: Path, repo_id: str, folder: Path, sha: str = SHA) -> Path:
    """The Hugging Face cache layout: refs/main → snapshot folder named by the commit hash."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "README.md"):
        (snapshot / name).write_bytes((folder / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    return snapshot


def _run_python(code: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------- folder format


def test_folder_holds_config_weights_and_card(saved, tiny):
    assert sorted(p.name for p in saved.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((saved / "config.json").read_text())
    assert config["architecture"] == "dirl_resnet18"
    assert config["model_args"] == TINY
    assert config["inharmony_version"] == inharmony.__version__
    assert config["format_version"] == hub.FORMAT_VERSION
    weights = load_file(saved / "model.safetensors")
    own = tiny.state_dict()
    assert set(weights) == set(own)
    assert all(torch.equal(weights[k], own[k]) for k in own)


def test_config_never_asks_for_a_backbone_download(tiny, tmp_path, monkeypatch):
    # Whatever the model was built with, config.json says pretrained_backbone=False ...
    folder = hub.save_pretrained(
        tiny, tmp_path / "m", model_kwargs={**TINY, "pretrained_backbone": "resnet18_imagenet.safetensors"}
    )
    config = json.loads((folder / "config.json").read_text())
    assert config["model_args"]["pretrained_backbone"] is False
    # ... and a hand-edited config asking for one is loaded without any download (offline would raise).
    config["model_args"]["pretrained_backbone"] = True
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = inharmony.from_pretrained(folder)
    assert torch.equal(_mask(loaded, torch.zeros(1, 3, 32, 32)), _mask(tiny, torch.zeros(1, 3, 32, 32)))


def test_model_card_contains_the_metrics_given(saved):
    card = (saved / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: inharmony" in card and "license: apache-2.0" in card
    # Fractions become paper units: AP and IoU in %, F1 as a fraction; subsets in the paper's order.
    assert "| HCOCO | 81.23 | 0.7011 | 65.02 |" in card
    assert "| Hday2night | 60.00 | 0.5000 | 40.00 |" in card
    assert "| All | 79.99 | 0.6912 | 63.33 |" in card
    assert card.index("| HCOCO |") < card.index("| Hday2night |") < card.index("| All |")
    assert "inharmony.from_pretrained(" in card and "inharmony predict" in card
    assert "arxiv.org/abs/2104.09453" in card


def test_model_card_reference_scores_for_the_paper_model(tmp_path):
    model = inharmony.create_model("dirl").eval()
    folder = hub.save_pretrained(model, tmp_path / "dirl", model_kwargs={}, metrics={"ap": 81.5})
    card = (folder / "README.md").read_text()
    assert "| All | 81.50 | – | – |" in card  # given: AP already in %
    assert "| All | 80.02 | 0.7317 | 67.85 |" in card  # the paper's reference, shown apart
    assert "license: cc-by-nc-4.0" in card


def test_model_card_reference_scores_for_pctnet(tmp_path):
    model = inharmony.create_model("pctnet", depth=1, lowres_size=32).eval()
    card = (hub.save_pretrained(model, tmp_path / "pct", model_kwargs={"depth": 1, "lowres_size": 32}) / "README.md")
    text = card.read_text()
    assert "(iHarmony4 test): MSE 18.84 / PSNR 39.29 dB / fMSE 237.49" in text
    assert "AP" not in text.split("## Results")[1].split("## How to load")[0]


def test_saving_again_replaces_the_card(tiny, tmp_path):
    folder = hub.save_pretrained(tiny, tmp_path / "m", model_kwargs=TINY, metrics={"ap": 0.5})
    hub.save_pretrained(tiny, folder, model_kwargs=TINY, metrics={"ap": 0.6})
    card = (folder / "README.md").read_text()
    assert "| All | 60.00 |" in card and "| All | 50.00 |" not in card


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", inharmony.list_models(task="localization"))
def test_every_registered_model_round_trips(name, tmp_path):
    model = _randomise_bn(inharmony.create_model(name))
    folder = hub.save_pretrained(model, tmp_path / name, model_kwargs={})
    loaded = inharmony.from_pretrained(folder)
    assert type(loaded) is type(model) and loaded.pretrained_cfg.architecture == name
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_mask(loaded, x), _mask(model, x))


def test_load_accepts_folders_state_dicts_and_hub_ids(saved, tiny, x, tmp_path):
    expected = _mask(tiny, x)
    assert torch.equal(_mask(inharmony.load("dirl_resnet18", weights=saved), x), expected)
    state_file = tmp_path / "weights.safetensors"
    state_file.write_bytes((saved / "model.safetensors").read_bytes())
    plain = inharmony.load("dirl_resnet18", weights=state_file, **TINY)
    assert torch.equal(_mask(plain, x), expected)
    with pytest.raises(FileNotFoundError, match="weights not found"):
        inharmony.load("dirl_resnet18", weights=tmp_path / "nope" / "deeper")


def test_pretrained_true_without_published_weights_says_so():
    with pytest.raises(inharmony.models.PretrainedWeightsUnavailableError, match="no published weights"):
        inharmony.load("dirl")


# --------------------------------------------------------------------------- HubMixin


def init_kwargs(model):
    """The constructor arguments huggingface_hub's mixin recorded (``None`` if none were)."""
    return model._hub_mixin_config


class _RecordingDIRL(DIRL, HubMixin):
    """DIRL with the mixin, as the registered classes use it."""


def test_hub_mixin_records_constructor_arguments(tmp_path, x):
    model = _RecordingDIRL(backbone="resnet18", decoder_channels=8)
    recorded = {"backbone": "resnet18", "decoder_channels": 8, "pretrained_backbone": False}
    assert init_kwargs(model) == {**recorded, "encoder_widths": (64, 128, 256, 512)}  # defaults are recorded too
    model = _randomise_bn(model)
    folder = model.save_pretrained(tmp_path / "m", model_name="dirl_resnet18")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_args"] == {**recorded, "encoder_widths": [64, 128, 256, 512]}
    loaded = inharmony.from_pretrained(folder)
    assert torch.equal(_mask(loaded, x), _mask(model, x))
    with pytest.raises(HubConfigError, match="not a _RecordingDIRL"):
        _RecordingDIRL.from_pretrained(folder)
    copy = __import__("copy").deepcopy(model)  # deepcopy goes through __new__ without arguments
    assert init_kwargs(copy) == init_kwargs(model)


@pytest.mark.parametrize("name", inharmony.list_models(task="localization"))
def test_registered_models_have_save_pretrained(name, tmp_path):
    model = inharmony.create_model(name).eval()
    folder = model.save_pretrained(tmp_path / name)
    loaded = type(model).from_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["architecture"] == name
    assert isinstance(loaded, type(model))


def test_unrecorded_or_wrong_arguments_are_refused_at_save_time(tiny, tmp_path):
    plain = DIRL(backbone="resnet18", decoder_channels=8)
    plain._hub_mixin_config = None  # as when nothing was recorded
    assert init_kwargs(plain) is None
    with pytest.raises(ValueError, match="were not recorded"):
        hub.save_pretrained(plain, tmp_path / "a", model_name="dirl_resnet18")
    with pytest.raises(ValueError, match="does not have this model's parameters"):
        hub.save_pretrained(tiny, tmp_path / "b", model_kwargs={"decoder_channels": 16})
    with pytest.raises(ValueError, match="unknown model 'nonsense'"):
        hub.save_pretrained(tiny, tmp_path / "c", model_name="nonsense", model_kwargs={})


# --------------------------------------------------------------------------- offline Hub ids


def test_fresh_process_folder_and_offline_cache(saved, tiny, x, tmp_path):
    """One fresh interpreter (imports cost ~10 s on a busy CI machine), three checks:

    1. the folder written by save_pretrained loads with identical outputs;
    2. a Hub id is served from a Hugging Face cache laid out by this test, with HF_HUB_OFFLINE=1,
       by from_pretrained (default and pinned revision), load() and create_model(pretrained=True)'s loader;
    3. a Hub id that is not cached fails within seconds, saying what to do.
    """
    cache = tmp_path / "hf_cache"
    _lay_out_cache(cache, "someone/dirl18", saved)
    np.save(tmp_path / "x.npy", x.numpy())
    code = (
        "import dataclasses, time, numpy as np, torch, inharmony\n"
        "from inharmony import models as hub\n"
        "from inharmony.errors import HubUnreachableError\n"
        f"x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"local = inharmony.from_pretrained({str(saved)!r})\n"
        "assert not local.training\n"
        "print(local.pretrained_cfg.name, local.pretrained_cfg.metrics['ap'])\n"
        "models = [local, inharmony.from_pretrained('someone/dirl18'),\n"
        f"          inharmony.from_pretrained('someone/dirl18', revision={SHA!r}),\n"
        "          inharmony.load('dirl_resnet18', weights='someone/dirl18')]\n"
        # create_model(pretrained=True)'s loader, for a tag pointing at that repository and revision:
        "cfg = dataclasses.replace(inharmony.get_pretrained_cfg('dirl_resnet18'), hf_hub_id='someone/dirl18',\n"
        f"                          revision={SHA!r})\n"
        "from inharmony.models import _registry\n"
        "_registry._PRETRAINED_CFGS['dirl_resnet18'][''] = cfg  # as if the weights were published\n"
        "models.append(inharmony.create_model('dirl_resnet18', pretrained=True, decoder_channels=8).eval())\n"
        "outs = []\n"
        "for model in models:\n"
        "    with torch.no_grad():\n"
        "        outs.append(model(x)['mask'].numpy())\n"
        f"np.save({str(tmp_path / 'outs.npy')!r}, np.stack(outs))\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    inharmony.from_pretrained('someone/not-cached')\n"
        "except HubUnreachableError as err:\n"
        "    print(f'{time.perf_counter() - start:.2f}')\n"
        "    print(err)\n"
    )
    env = {**ENV, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf_home")}
    result = _run_python(code, env)
    assert result.returncode == 0, result.stderr
    first, seconds, message = result.stdout.split("\n", 2)
    assert first.split() == ["dirl_resnet18", "79.99"]
    outs = np.load(tmp_path / "outs.npy")
    expected = _mask(tiny, x).numpy()
    assert len(outs) == 5  # folder; Hub id (main, pinned revision); load(); create_model(pretrained=True)
    for out in outs:
        assert np.array_equal(out, expected)
    assert float(seconds) < 5.0
    assert "someone/not-cached" in message and "HF_HUB_OFFLINE" in message and "local folder" in message


# --------------------------------------------------------------------------- bad folders


def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for item in folder.iterdir():
        (dest / item.name).write_bytes(item.read_bytes())
    return dest


def test_folder_of_another_architecture(saved, tmp_path):
    with pytest.raises(HubConfigError, match="holds weights of 'dirl_resnet18', not 'dirl'"):
        inharmony.load("dirl", weights=saved)
    with pytest.raises(HubConfigError, match="holds weights of 'dirl_resnet18'"):
        inharmony.from_pretrained(saved, expected_architecture="dirl")
    # config.json says one thing, the weights are another's: the mismatch is named key by key.
    mixed = _copy(saved, tmp_path / "mixed")
    config = json.loads((mixed / "config.json").read_text())
    config["architecture"], config["model_args"] = "dirl", {}
    (mixed / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not fit DIRL: missing keys \(\d+\): encoder\.layer"):
        inharmony.from_pretrained(mixed)


def test_config_from_a_newer_library_version(saved, tmp_path):
    newer = _copy(saved, tmp_path / "newer")
    config = json.loads((newer / "config.json").read_text())
    config.update(inharmony_version="99.0.0", format_version=hub.FORMAT_VERSION + 1)
    (newer / "config.json").write_text(json.dumps(config))
    newer_message = r"written by inharmony 99\.0\.0, newer than the installed .*pip install -U"
    with pytest.raises(HubConfigError, match=newer_message):
        inharmony.from_pretrained(newer)
    # Same format, but an architecture only the newer version has: still says why.
    config.update(format_version=hub.FORMAT_VERSION, architecture="dirl_v9")
    (newer / "config.json").write_text(json.dumps(config))
    with pytest.raises(HubConfigError, match=r"newer than the installed.*'dirl_v9'"):
        inharmony.from_pretrained(newer)
    # Same version, unknown architecture: no false talk of upgrades.
    config.update(inharmony_version=inharmony.__version__)
    (newer / "config.json").write_text(json.dumps(config))
    with pytest.raises(HubConfigError, match="does not know") as info:
        inharmony.from_pretrained(newer)
    assert "newer than" not in str(info.value)


def test_not_a_hub_folder(tmp_path, saved):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HubConfigError, match=r"has no config\.json"):
        inharmony.from_pretrained(empty)
    broken = _copy(saved, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(HubConfigError, match="not valid JSON"):
        inharmony.from_pretrained(broken)
    no_weights = _copy(saved, tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        inharmony.from_pretrained(no_weights)
    with pytest.raises(HubConfigError, match="is a file"):
        inharmony.from_pretrained(saved / "model.safetensors")


# --------------------------------------------------------------------------- Lightning checkpoints → push


@pytest.fixture(scope="module")
def lightning_ckpt(tmp_path_factory):
    """A checkpoint written by Lightning's Trainer for a LocalizationTask, after one training step."""
    import lightning as L

    from inharmony.training.localization import LocalizationTask

    torch.manual_seed(0)
    task = LocalizationTask("dirl_resnet18", model_kwargs=TINY)
    samples = [{"image": torch.randn(3, 32, 32), "mask": (torch.rand(1, 32, 32) > 0.7).float()} for _ in range(2)]
    root = tmp_path_factory.mktemp("ckpt")
    trainer = L.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=root,
    )
    trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(samples, batch_size=2))
    path = root / "best.ckpt"
    trainer.save_checkpoint(path)
    return path, task.model.eval()


def test_lightning_checkpoint_rebuilds_the_network(lightning_ckpt, x):
    path, network = lightning_ckpt
    model, hparams = load_lightning_checkpoint(path)
    assert hparams["model"] == "dirl_resnet18" and hparams["model_kwargs"] == TINY
    assert torch.equal(_mask(model, x), _mask(network, x))
    assert torch.equal(_mask(inharmony.load("dirl_resnet18", weights=path), x), _mask(network, x))
    with pytest.raises(CheckpointError, match="trained as 'dirl_resnet18', not 'dirl'"):
        inharmony.load("dirl", weights=path)


def test_push_dry_run_writes_the_folder_with_metrics(lightning_ckpt, tmp_path, x, capsys):
    from inharmony.cli import main

    path, network = lightning_ckpt
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps([{"test/ap": 0.75, "test/f1": 0.66, "test/iou": 0.59, "test/HFlickr/ap": 0.7}]))
    out = tmp_path / "pushed"
    code = main(
        ["push", str(path), "--repo-id", "me/dirl18", "--metrics", str(metrics), "--out", str(out), "--dry-run"]
    )
    assert code == 0, capsys.readouterr().err
    card = (out / "README.md").read_text()
    assert "| All | 75.00 | 0.6600 | 59.00 |" in card and "| HFlickr | 70.00 | – | – |" in card
    assert 'inharmony.from_pretrained("me/dirl18")' in card
    assert torch.equal(_mask(inharmony.from_pretrained(out), x), _mask(network, x))


def test_push_offline_fails_fast_with_what_to_do(lightning_ckpt, tmp_path, monkeypatch, capsys):
    from inharmony.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    code = main(["push", str(lightning_ckpt[0]), "--repo-id", "me/dirl18"])
    assert code == 2 and time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE" in err and "--dry-run" in err
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE"):
        hub.push_to_hub(lightning_ckpt[1], "me/dirl18", model_name="dirl_resnet18", model_kwargs=TINY)


def test_push_bad_inputs(tmp_path, lightning_ckpt, capsys):
    from inharmony.cli import main

    assert main(["push", str(tmp_path / "missing.ckpt"), "--repo-id", "a/b", "--out", "o", "--dry-run"]) == 2
    assert "checkpoint file not found" in capsys.readouterr().err
    metrics = tmp_path / "m.json"
    metrics.write_text('{"loss": 0.1}')
    assert main(["push", str(lightning_ckpt[0]), "--repo-id", "a/b", "--metrics", str(metrics),
                 "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "holds no 'ap', 'f1' or 'iou'" in capsys.readouterr().err


# --------------------------------------------------------------------------- authors' checkpoints → hub folder


def test_convert_dirl_official_writes_a_loadable_folder(tmp_path, capsys):
    from inharmony.cli import main
    from inharmony.models.converters.official_dirl import dirl_to_official_state_dicts

    model = _randomise_bn(inharmony.create_model("dirl"))
    encoder, decoder = dirl_to_official_state_dicts(model)
    official = tmp_path / "official"
    official.mkdir()
    for name, state in (("encoder", encoder), ("decoder", decoder)):
        prefixed = {f"module.{k}": v for k, v in state.items()}  # as saved from DataParallel
        payload = {"epoch": 60, "best_acc": 0.8, "state_dict": prefixed, "opt": {}}
        torch.save(payload, official / f"{name}_epochbest.pth")
    out = tmp_path / "dirl_hub"
    assert main(["convert", "dirl-official", "--dir", str(official), "--out", str(out)]) == 0, capsys.readouterr().err
    loaded = inharmony.from_pretrained(out)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert torch.equal(_mask(loaded, x), _mask(model, x))
    assert json.loads((out / "config.json").read_text())["model_args"]["decoder_channels"] == 32
    assert torch.equal(_mask(inharmony.load("dirl", weights=official), x), _mask(model, x))  # the folder itself
    assert main(["convert", "dirl-official", "--dir", str(official), "--out", str(out)]) == 2  # not empty
    assert main(["convert", "dirl-official", "--dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_pretrained_cfg_survives_the_round_trip(saved):
    cfg = inharmony.from_pretrained(saved).pretrained_cfg
    registry = inharmony.get_pretrained_cfg("dirl_resnet18")
    assert dataclasses.replace(cfg, metrics={}) == dataclasses.replace(registry, metrics={})
    assert cfg.metrics == {"ap": 79.99, "f1": 0.6912, "iou": 63.33}


def test_push_to_hub_uploads_config_weights_and_card(tiny, tmp_path, monkeypatch):
    """The upload path up to the HTTP calls: HfApi is replaced by a recorder (no network here)."""
    import huggingface_hub.hub_mixin as hub_mixin

    from inharmony.models import _hub

    uploaded = {}

    class RecordingApi:
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            uploaded["create"] = (repo_id, private, exist_ok)
            return type("Repo", (), {"repo_id": repo_id})()

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploaded["files"] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
            uploaded["kwargs"] = kwargs
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(_hub, "hub_is_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(hub_mixin, "HfApi", RecordingApi)
    url = hub.push_to_hub(
        tiny, "me/dirl18", model_kwargs=TINY, metrics={"ap": 0.7}, private=True, commit_message="first weights"
    )
    assert url == "https://huggingface.co/me/dirl18/commit/abc"
    assert uploaded["create"] == ("me/dirl18", True, True)
    assert sorted(uploaded["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(uploaded["files"]["config.json"])["model_args"] == TINY
    card = uploaded["files"]["README.md"].decode()
    assert "| All | 70.00 |" in card and 'inharmony.from_pretrained("me/dirl18")' in card
    assert uploaded["kwargs"]["commit_message"] == "first weights"


def test_push_a_hub_folder_with_metrics_written_by_inharmony_test(saved, tmp_path, capsys):
    from inharmony.cli import main
    from inharmony.metrics.report import write_results

    results = {"HCOCO": {"ap": 0.9, "f1": 0.8, "iou": 0.7}, "All": {"ap": 0.85, "f1": 0.75, "iou": float("nan")}}
    metrics_json, _ = write_results(results, tmp_path / "test_out")
    out = tmp_path / "pushed"
    code = main(["push", str(saved), "--repo-id", "me/x", "--metrics", str(metrics_json), "--out", str(out),
                 "--dry-run"])
    assert code == 0, capsys.readouterr().err
    card = (out / "README.md").read_text()
    assert "| HCOCO | 90.00 | 0.8000 | 70.00 |" in card and "| All | 85.00 | 0.7500 | – |" in card
    assert json.loads((out / "config.json").read_text())["model_args"] == TINY
