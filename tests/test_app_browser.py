"""``inharmony app`` in a real browser: headless Chromium (the system's, never a downloaded one) via Playwright.

Chromium is found at ``$INHARMONY_CHROMIUM``, else ``/usr/bin/chromium`` or ``chromium`` on ``PATH`` (Debian's
``chromium`` package; ``.ci/run`` installs it when missing). Without one the test is skipped and says so.
The screenshot is written to the test's temporary folder and, when ``$INHARMONY_SCREENSHOT_DIR`` is set,
there too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'inharmony[app]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")

from test_app import Served, photo, serve  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

# The flags Chromium needs on a machine with no network and no GPU; Playwright gives it a fresh empty profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OVERLAY_SHOWN = """() => {
    const img = document.querySelector('#overlay img');
    return img !== null && img.complete && img.naturalWidth > 0 ? [img.naturalWidth, img.naturalHeight] : null;
}"""


def chromium_path() -> str | None:
    for candidate in (os.environ.get("INHARMONY_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve() as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip(
            "no Chromium on this machine (looked at $INHARMONY_CHROMIUM, /usr/bin/chromium, chromium on PATH): "
            "install Debian's package (apt-get install chromium); this test never downloads a browser"
        )
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        except sync_api.Error as err:
            pytest.skip(f"Chromium at {executable} does not start headless here: {str(err).splitlines()[0]}")
        yield browser
        browser.close()


def test_page_shows_the_overlay_of_an_uploaded_photo(served: Served, browser, tmp_path: Path) -> None:
    path = photo(tmp_path / "cat.jpg", 120, 200)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(served.url, wait_until="domcontentloaded")
    calls = len(served.calls)
    page.locator("#photo input[type=file]").set_input_files(str(path))
    size = page.wait_for_function(OVERLAY_SHOWN, timeout=60_000).json_value()
    page.wait_for_timeout(500)  # let the other pictures and the status line paint before the screenshot
    assert len(served.calls) == calls + 1, "one upload ran the network more than once"
    shots = [tmp_path / "app_screenshot.png"]
    if os.environ.get("INHARMONY_SCREENSHOT_DIR"):
        shots.append(Path(os.environ["INHARMONY_SCREENSHOT_DIR"]) / "app_screenshot.png")
    for shot in shots:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    width, height = size
    assert abs(width / height - 200 / 120) < 0.02  # the overlay keeps the photo's aspect ratio
    assert "200×120 px" in page.locator("#status").inner_text()
    page.close()


def test_a_broken_upload_shows_a_message_and_the_page_keeps_working(served: Served, browser, tmp_path: Path) -> None:
    good = photo(tmp_path / "good.jpg", 96, 128)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a truncated JPEG
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(served.url, wait_until="domcontentloaded")
    page.locator("#photo input[type=file]").set_input_files(str(broken))
    page.get_by_text("broken.jpg cannot be decoded").first.wait_for(timeout=60_000)
    page.screenshot(path=str(tmp_path / "app_error.png"), full_page=True)
    page.locator("#photo input[type=file]").set_input_files(str(good))
    width, height = page.wait_for_function(OVERLAY_SHOWN, timeout=60_000).json_value()
    assert abs(width / height - 128 / 96) < 0.02
    page.close()
