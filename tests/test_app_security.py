"""The web page against a hostile visitor: every value sent to the HTTP API is checked on the server.

Driven through ``gradio_client`` the way an attacker would call the API (not the browser, which only
sends what the page's widgets allow): models and weights the page does not offer, server paths as
weights or as the photo, thresholds out of range or of the wrong type. Each refusal must be a clear
message that holds no file contents and no server path the visitor did not type, must load nothing,
and must leave the server serving.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from torch import nn

pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'inharmony[app]'")
gradio_client = pytest.importorskip("gradio_client")

from inharmony.inference import Predictor  # noqa: E402
from test_app import TinyLocalizer, free_port, photo, read_grey  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

SECRET = "hf_SECRET_TOKEN_0123456789"


class Served:
    def __init__(self, url: str, demo: object, loads: list[tuple[str, str | None]]) -> None:
        self.url, self.demo, self.loads = url, demo, loads


@contextlib.contextmanager
def serve(tmp: Path, **options: object) -> Iterator[Served]:
    """The page with a tiny given model; every network the server builds is recorded in ``loads``."""
    from inharmony.app import build_app

    loads: list[tuple[str, str | None]] = []

    def loader(model: str, weights: str | None) -> nn.Module:
        loads.append((model, weights))
        from inharmony import load

        return load(model, weights)

    predictor = Predictor(TinyLocalizer(), size=48, device="cpu")
    demo = build_app("tiny", predictor=predictor, max_pixels=40_000, harmonizer=None, loader=loader, **options)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Served(f"http://127.0.0.1:{port}/", demo, loads)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Server-side files a visitor must never read: a token, an image outside any upload, a weights root."""
    root = tmp_path_factory.mktemp("server")
    (root / "token").write_text(f"{SECRET}\nsecond line\n")
    photo(root / "private.png", 64, 96)
    weights = root / "weights"
    weights.mkdir()
    (weights / "notes.txt").write_text(f"{SECRET} is the token\n")
    # A real hub folder the operator offers, and a symlink inside the root that points out of it.
    from inharmony.models import create_model

    create_model("dirl_tiny").save_pretrained(weights / "dirl_tiny_hub")
    os.symlink(root / "token", weights / "escape.pth")
    return root


@pytest.fixture(scope="module")
def locked(secrets: Path) -> Iterator[Served]:
    """A public page: no custom weights (the default)."""
    with serve(secrets) as served:
        yield served


@pytest.fixture(scope="module")
def rooted(secrets: Path) -> Iterator[Served]:
    """A page whose operator lets visitors pick weights under one folder."""
    with serve(secrets, weights_roots=[secrets / "weights"]) as served:
        yield served


def call(served: Served, upload: object, model: str, weights: object, threshold: object) -> tuple:
    client = gradio_client.Client(served.url, verbose=False)
    return client.predict(upload, model, weights, threshold, api_name="/localize")


def refused(served: Served, *args: object, match: str) -> str:
    """The request is refused with a message matching ``match``; returns the message."""
    with pytest.raises(gradio_client.exceptions.AppError, match=match) as info:
        call(served, *args)
    return str(info.value)


def assert_safe(message: str, secrets: Path) -> None:
    assert SECRET not in message and "second line" not in message
    assert str(secrets) not in message and "/tmp" not in message


def assert_still_serving(served: Served, tmp_path: Path) -> None:
    good = photo(tmp_path / "good.png", 48, 64)
    *_, mask_png, _, _, _ = call(served, gradio_client.handle_file(str(good)), "tiny", "given", 0.5)[:6]
    assert read_grey(mask_png).shape == (48, 64)


def test_a_model_the_page_does_not_offer_is_refused_and_never_built(locked: Served, secrets: Path, tmp_path) -> None:
    up = gradio_client.handle_file(str(photo(tmp_path / "a.png", 48, 64)))
    # S2AM is a harmonizer: the localizer dropdown does not list it. An unknown name neither.
    for model in ("s2am", "no_such_model", "../../etc/passwd", ""):
        message = refused(locked, up, model, "untrained", 0.5, match="not offered|not one of")
        assert_safe(message, secrets)
    assert locked.loads == [] and not locked.demo.inharmony_cache.has("s2am", "untrained")
    assert_still_serving(locked, tmp_path)


def test_server_paths_as_weights_are_refused_without_being_read(locked: Served, secrets: Path, tmp_path) -> None:
    up = gradio_client.handle_file(str(photo(tmp_path / "b.png", 48, 64)))
    for weights in (str(secrets / "token"), "/etc/passwd", str(secrets / "weights" / "dirl_tiny_hub"), "org/repo"):
        message = refused(locked, up, "dirl_tiny", weights, 0.5, match="custom weights are not accepted")
        assert SECRET not in message and "root:" not in message
    assert locked.loads == []
    assert_still_serving(locked, tmp_path)


def test_weights_outside_the_operators_roots_are_refused(rooted: Served, secrets: Path, tmp_path) -> None:
    up = gradio_client.handle_file(str(photo(tmp_path / "c.png", 48, 64)))
    outside = [
        str(secrets / "token"),
        "/etc/passwd",
        str(secrets / "weights" / ".." / "token"),
        "../token",
        "escape.pth",  # a symlink inside the root to a file outside it
        "org/repo",  # a Hub id: the page downloads nothing a visitor names
    ]
    for weights in outside:
        message = refused(rooted, up, "dirl_tiny", weights, 0.5, match="not under the weights folders")
        assert_safe(message.replace(weights, ""), secrets)
        assert SECRET not in message
    assert rooted.loads == []
    assert_still_serving(rooted, tmp_path)


def test_a_text_file_under_a_root_is_named_but_not_quoted(rooted: Served, secrets: Path, tmp_path) -> None:
    up = gradio_client.handle_file(str(photo(tmp_path / "d.png", 48, 64)))
    message = refused(rooted, up, "dirl_tiny", "notes.txt", 0.5, match="notes.txt.*text file")
    assert SECRET not in message and "is the token" not in message
    assert str(secrets) not in message  # the visitor typed "notes.txt", not the server's folder
    assert_still_serving(rooted, tmp_path)


def test_weights_under_a_root_are_loaded(rooted: Served, secrets: Path, tmp_path) -> None:
    up = gradio_client.handle_file(str(photo(tmp_path / "e.png", 48, 64)))
    *_, mask_png, _, status = call(rooted, up, "dirl_tiny", "dirl_tiny_hub", 0.5)[:6]
    assert read_grey(mask_png).shape == (48, 64)
    assert rooted.loads[-1] == ("dirl_tiny", str((secrets / "weights" / "dirl_tiny_hub").resolve()))
    assert "dirl_tiny_hub" in status and str(secrets) not in status


def test_a_server_file_given_as_the_photo_is_refused(locked: Served, secrets: Path, tmp_path) -> None:
    # Not uploaded through the page: a plain path, and a file-shaped dict pointing at the server's disk.
    # Gradio itself refuses a bare string; a dict without Gradio's file marker passes Gradio unchecked
    # (gradio_client would upload a marked one from this machine: a real upload) and must be refused by the page.
    for payload, message in (
        (str(secrets / "private.png"), ""),
        ({"path": str(secrets / "private.png")}, "did not arrive as an upload"),
        ({"path": "/etc/passwd", "orig_name": "passwd"}, "did not arrive as an upload"),
        ({"path": str(secrets / "weights" / ".." / "private.png")}, "did not arrive as an upload"),
    ):
        with pytest.raises(gradio_client.exceptions.AppError, match=message) as info:
            call(locked, payload, "tiny", "given", 0.5)
        assert_safe(str(info.value), secrets)
        assert "private" not in str(info.value)
    assert_still_serving(locked, tmp_path)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -3, 7.5, "0.5; rm -rf /", None, True, float("nan")])
def test_thresholds_outside_the_slider_are_refused(locked: Served, secrets: Path, tmp_path, threshold) -> None:
    up = gradio_client.handle_file(str(photo(tmp_path / "f.png", 48, 64)))
    if isinstance(threshold, float) and threshold != threshold:
        threshold = "NaN"
    refused(locked, up, "tiny", "given", threshold, match="threshold")
    client = gradio_client.Client(locked.url, verbose=False)
    with pytest.raises(gradio_client.exceptions.AppError):  # Gradio's slider check answers first here
        client.predict(threshold, api_name="/rebinarize")


def test_custom_weights_need_a_root() -> None:
    from inharmony.app import build_app

    predictor = Predictor(TinyLocalizer(), size=48, device="cpu")
    with pytest.raises(ValueError, match="weights_roots"):
        build_app("tiny", predictor=predictor, allow_custom_weights=True, harmonizer=None)


def test_redaction_keeps_what_the_visitor_typed_only() -> None:
    from inharmony.app.checks import redact

    text = "cannot read /srv/models/x.pth (from C:\\Users\\op\\w.pth) for weights/x.pth: 1/255 off"
    out = redact(text, keep=("weights/x.pth",))
    assert "/srv" not in out and "Users" not in out and "weights/x.pth" in out and "1/255" in out
    assert re.search(r"<server path>.*<server path>", out)


def test_upload_names_cannot_escape_the_download_folder() -> None:
    from inharmony.app.checks import safe_stem

    assert safe_stem("../../etc/cron.d/evil.png") == "evil"
    assert safe_stem("\x00bad name.png") == "bad_name"
    assert len(safe_stem("a" * 1000 + ".png")) <= 100
    assert safe_stem("...") == "photo" and safe_stem(None) == "photo"
    assert np.all([c.isalnum() or c in "._-" for c in safe_stem("ünï cödé€.jpg")])


def test_checks_refuse_non_strings_as_model_or_weights() -> None:
    from inharmony.app.checks import Offer

    offer = Offer(models=("tiny",), start_model="tiny", start_weights="given", weights_roots=())
    with pytest.raises(ValueError, match="model"):
        offer.check_model(["tiny"])
    with pytest.raises(ValueError, match="weights"):
        offer.check_weights("tiny", {"path": "/etc/passwd"})
    assert offer.check_model("tiny") == "tiny"


def test_cli_passes_weights_roots_and_defaults_to_none(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import inharmony.app.page
    from inharmony.cli import main
    from inharmony.errors import InharmonyError

    seen: list[dict] = []

    def recorder(*args: object, **kwargs: object) -> None:
        seen.append(kwargs)
        raise InharmonyError("stop before serving")

    monkeypatch.setattr(inharmony.app.page, "build_app", recorder)
    assert main(["app", "--weights", "untrained"]) == 2
    second = tmp_path / "more"
    second.mkdir()
    assert main(["app", "--weights", "untrained", "--weights-root", str(tmp_path), "--weights-root", str(second)]) == 2
    assert list(seen[0]["weights_roots"]) == [] and list(seen[1]["weights_roots"]) == [str(tmp_path), str(second)]
