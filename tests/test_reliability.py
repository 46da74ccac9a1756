"""Nothing the user made is lost or replaced, and every fault names its real cause (issue #24, parts 2-4).

Each test drives a command or function the way a user (or a fault) would and checks both the message
and that the user's files are byte-for-byte what they were.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inharmony.cli import main
from inharmony.data import synthesize


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def synth_root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    synthesize(root, n=6, seed=0, size=48, subset="HCOCO", progress=False)
    return root


def test_synth_refuses_a_subset_holding_files_it_did_not_write(synth_root: Path, capsys) -> None:
    extra = synth_root / "HCOCO" / "composite_images" / "c999_1_1.jpg"
    shutil.copy(next((synth_root / "HCOCO" / "composite_images").iterdir()), extra)
    before = _snapshot(synth_root)
    assert main(["synth", "--out", str(synth_root), "--subset", "HCOCO", "--n", "3", "--size", "48", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "HCOCO" in err and "c999_1_1.jpg" in err and "nothing was written" in err
    assert _snapshot(synth_root) == before


@pytest.mark.parametrize("listing", ["IHD_train.txt", "HCOCO/HCOCO_train.txt"])
def test_synth_refuses_when_the_lists_name_composites_it_did_not_write(synth_root: Path, listing, capsys) -> None:
    entry = "HCOCO/composite_images/c21070_1396052_1.jpg" if listing == "IHD_train.txt" else "c21070_1396052_1.jpg"
    path = synth_root / listing
    path.write_text(path.read_text() + entry + "\n")
    before = _snapshot(synth_root)
    assert main(["synth", "--out", str(synth_root), "--subset", "HCOCO", "--n", "3", "--size", "48", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "c21070_1396052_1.jpg" in err and Path(listing).name in err
    assert _snapshot(synth_root) == before


def test_synth_still_replaces_a_subset_it_wrote(synth_root: Path) -> None:
    summary = synthesize(synth_root, n=3, seed=1, size=48, subset="HCOCO", progress=False)
    assert summary["train"] + summary["test"] == 3
    listed = [e for e in (synth_root / "IHD_train.txt").read_text().split() if e.startswith("HCOCO/")]
    assert len(listed) == summary["train"]


def test_a_list_entry_with_a_space_is_read_whole(tmp_path: Path) -> None:
    from inharmony.data.index import read_list_file

    listing = tmp_path / "le50_test.txt"
    listing.write_text(
        "HFlickr/composite_images/my photo-00098_1_1.jpg\n"
        "HCOCO/composite_images/c1_2_1.jpg 0.31\n"  # an extra column after the path still works
    )
    assert read_list_file(listing) == [("HFlickr", "my photo-00098_1_1.jpg"), ("HCOCO", "c1_2_1.jpg")]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["model", "--threads", "0"], "threads"),
        (["model", "--size", "-3"], "size"),
        (["inference", "--photo-size", "0x0"], "--photo-size"),
        (["inference", "--photo-size", "big"], "--photo-size"),
        (["batch", "--batches", "0,x"], "--batches"),
        (["metrics", "--threads", "0"], "--threads"),
        (["metrics", "--update-sizes", "1,-2"], "--update-sizes"),
        (["data", "--sizes", "10"], "--sizes"),
        (["data", "--le50-size", "0x5"], "--le50-size"),
        (["eval_pixels", "--seed", "-1"], "seed"),
        (["train", "--repeats", "0"], "repeats"),
    ],
)
def test_bench_options_are_checked_where_parsed(args: list[str], option: str, capsys) -> None:
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["synth", "--n", "3", "--size", "0"], "--size"),
        (["synth", "--n", "3", "--test-fraction", "2"], "--test-fraction"),
        (["synth", "--n", "3", "--masks-per-image", "0"], "--masks-per-image"),
        (["data", "resize", "--max-side", "0"], "--max-side"),
        (["data", "resize", "--workers", "-2"], "--workers"),
        (["data", "resize", "--quality", "101"], "--quality"),
        (["data", "optimize", "--workers", "-1"], "--workers"),
        (["data", "check", "--workers", "-1"], "--workers"),
    ],
)
def test_data_tool_options_are_checked_before_any_work(args, option, synth_root: Path, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    where = ["--out", str(out)] if args[0] == "synth" else ["--root", str(synth_root)]
    if args[:2] in (["data", "resize"], ["data", "optimize"]):
        where += ["--out", str(out)]
    before = _snapshot(synth_root)
    assert main([*args, *where]) == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err
    assert not out.exists() and _snapshot(synth_root) == before


@pytest.mark.parametrize("bad", [None, 3, {"a": 1}, b"abc"], ids=["None", "int", "dict", "bytes"])
def test_predictor_refuses_what_is_not_an_image_or_a_list_of_them(bad) -> None:
    import inharmony
    from inharmony.inference import Predictor

    predictor = Predictor(inharmony.create_model("dirl_tiny").eval(), size=32, device="cpu")
    with pytest.raises(TypeError, match=f"takes an image .* got {type(bad).__name__}"):
        predictor(bad)
    with pytest.raises(TypeError, match="takes an image"):
        list(predictor.iter_masks(bad))


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["demo", "--n", "0"], "--n"),
        (["demo", "--steps", "0"], "--steps"),
        (["demo", "--panels", "-1"], "--panels"),
        (["demo", "--panel-size", "0"], "--panel-size"),
        (["app", "--port", "-1", "--weights", "untrained"], "--port"),
        (["app", "--max-pixels", "0", "--weights", "untrained"], "--max-pixels"),
        (["app", "--weights-root", "/nonexistent/weights", "--weights", "untrained"], "--weights-root"),
    ],
)
def test_demo_and_app_options_are_checked_before_any_work(args, option, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"inharmony: error: {option} ") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing synthesized, trained or served


@pytest.mark.parametrize("name", ["pctnet", "s2am", "bargainnet"])
def test_predictor_refuses_a_harmonizer_or_scorer_before_any_download(name, monkeypatch) -> None:
    import inharmony
    from inharmony.inference import Predictor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=f"{name} is a .* not a localizer"):
        Predictor(name)  # by name: refused before the weights are looked for
    with pytest.raises(ValueError, match="not a localizer"):
        Predictor(inharmony.create_model(name))
    Predictor(inharmony.create_model("s2am_maskfree"))  # predicts its own mask: a localizer too
