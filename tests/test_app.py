"""``inharmony app``: the page served on a free localhost port, called through ``gradio_client``.

One server per module (Gradio's start is the slow part), with a tiny random-weight localizer (one
3×3 convolution, so a request costs milliseconds) whose forward calls are counted. Masks are checked
against the same predictor run directly in this process, an independent path to the same numbers.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'inharmony[app]'")
gradio_client = pytest.importorskip("gradio_client")

from inharmony.inference import Predictor, load_image_array  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

MAX_PIXELS = 40_000  # small, so that a 300×200 photo is "over the limit" here


class TinyLocalizer(nn.Module):
    """A random-weight localizer: one convolution and a sigmoid (masks vary with the photo)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": torch.sigmoid(2.0 * self.conv(x))}


@dataclass
class Served:
    url: str
    predictor: Predictor
    calls: list[int]  # one item per forward pass of the network
    demo: object


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Brighten(nn.Module):
    """A stand-in harmonizer: brightens the masked region of the [0, 1] RGB input by 0.25."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": (image + 0.25 * mask).clamp(0.0, 1.0)}


def tiny_harmonizer() -> object | None:
    """A :class:`inharmony.inference.harmonizer.Harmonizer` around :class:`Brighten`, scored by a random BargainNet."""
    try:
        from inharmony.inference.harmonizer import Harmonizer
        from inharmony.inference.scorer import HarmonyScorer
    except ImportError:
        return None
    from bargainnet_reference import libcom_state_dict
    from inharmony.models import load_state_dict_strict
    from inharmony.models.bargainnet import BargainNet, checkpoint_filter_fn

    bargainnet = BargainNet()
    load_state_dict_strict(bargainnet, checkpoint_filter_fn(libcom_state_dict(seed=1)), "random")
    scorer = HarmonyScorer(bargainnet.eval(), size=64, device="cpu", localizer=None)
    return Harmonizer(Brighten(), size=48, device="cpu", scorer=scorer)


@contextlib.contextmanager
def serve(harmonizer: object | None = None) -> Iterator[Served]:
    """Start the page (tiny model) on a free localhost port; closed on exit."""
    from inharmony.app import build_app

    predictor = Predictor(TinyLocalizer(), size=48, device="cpu")
    calls: list[int] = []
    predictor.model.register_forward_hook(lambda *_: calls.append(1))
    demo = build_app("tiny", predictor=predictor, max_pixels=MAX_PIXELS, harmonizer=harmonizer)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Served(f"http://127.0.0.1:{port}/", predictor, calls, demo)
    finally:
        demo.close()


def photo(path: Path, height: int, width: int) -> Path:
    """A real photo (scikit-image's cat) resized to ``height × width``, written to ``path``."""
    import skimage.data

    rgb = cv2.resize(skimage.data.chelsea(), (width, height), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    harmonizer = tiny_harmonizer()
    with serve(harmonizer=harmonizer) as s:
        s.demo.harmonizer_for_tests = harmonizer
        yield s


@pytest.fixture
def client(served: Served):
    return gradio_client.Client(served.url, verbose=False)


def localize(client, path: Path, threshold: float = 0.5) -> tuple:
    return client.predict(gradio_client.handle_file(str(path)), "tiny", "given", threshold, api_name="/localize")


def read_grey(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 2 and image.dtype == np.uint8, path
    return image


def test_mask_has_the_photos_size_and_matches_the_predictor(served: Served, client, tmp_path: Path) -> None:
    path = photo(tmp_path / "cat.jpg", 90, 140)
    soft, over, region, mask_png, region_png, status, *_ = localize(client, path)
    mask = read_grey(mask_png)
    assert mask.shape == (90, 140)
    # The same predictor run here, on the same decoded pixels: the served mask is its probability × 255.
    expected = served.predictor.predict(load_image_array(path))
    assert np.abs(mask.astype(np.float64) - expected * 255.0).max() <= 0.5 + 1e-3
    assert 0 < mask.min() < mask.max() < 255  # a sigmoid of a random conv: inside (0, 1), not constant
    # The three pictures keep the photo's aspect ratio.
    for shown in (soft, over, region):
        h, w = cv2.imread(shown, cv2.IMREAD_UNCHANGED).shape[:2]
        assert abs(w / h - 140 / 90) < 0.02
    assert set(np.unique(read_grey(region_png))) <= {0, 255}
    assert "140×90 px" in status


def test_threshold_rebinarizes_without_running_the_network(served: Served, client, tmp_path: Path) -> None:
    path = photo(tmp_path / "cat.png", 80, 120)
    before = len(served.calls)
    *_, mask_png, _, _ = localize(client, path)[:6]
    assert len(served.calls) == before + 1
    prob = read_grey(mask_png).astype(np.float64) / 255.0
    regions = []
    for quantile in (0.3, 0.7):
        threshold = float(np.clip(np.round(np.quantile(prob, quantile), 2), 0.01, 0.99))
        _, region_png = client.predict(threshold, api_name="/rebinarize")
        region = read_grey(region_png) > 0
        # Independent reference: the downloaded probability mask thresholded here (8-bit rounding aside).
        reference = prob >= threshold
        near = np.abs(prob - threshold) <= 1 / 255
        assert np.array_equal(region[~near], reference[~near])
        regions.append(region)
    assert len(served.calls) == before + 1, "moving the threshold ran the network again"
    assert regions[0].sum() > regions[1].sum() > 0  # a lower threshold marks more pixels


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width × height`` with no image data after it (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(data + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    return path


def test_bad_uploads_give_a_clear_message_and_the_server_keeps_serving(served: Served, client, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a photo\n")
    good = photo(tmp_path / "good.jpg", 64, 96)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = {
        text: "notes.txt is not an image this page can read",
        truncated: "truncated",
        _png_header_only(tmp_path / "huge.png", 30000, 30000): "too large to decode safely",
    }
    for bad, message in cases.items():
        with pytest.raises(gradio_client.exceptions.AppError, match=message):
            localize(client, bad)
    *_, mask_png, _, _ = localize(client, good)[:6]
    assert read_grey(mask_png).shape == (64, 96)


def test_photo_over_the_pixel_limit_is_downscaled_and_the_page_says_so(client, tmp_path: Path) -> None:
    path = photo(tmp_path / "big.jpg", 200, 300)  # 60,000 px > 40,000
    *_, mask_png, _, status = localize(client, path)[:6]
    h, w = read_grey(mask_png).shape
    assert h * w <= MAX_PIXELS and abs(w / h - 1.5) < 0.01 and w >= 240
    assert "downscaled" in status and "300×200" in status


def test_fix_changes_the_region_only_and_shows_both_scores(served: Served, client, tmp_path: Path) -> None:
    if "/harmonize" not in client.view_api(print_info=False, return_format="dict")["named_endpoints"]:
        pytest.skip("inharmony.inference.harmonizer is not importable: the page has no harmonize button")
    path = photo(tmp_path / "cat.png", 72, 108)
    *_, region_png, _ = localize(client, path)[:6]
    threshold = 0.5
    region = read_grey(region_png) > 0
    assert 0 < region.sum() < region.size
    before_png, after_png, scores, harmonized_png = client.predict(threshold, api_name="/harmonize")
    assert Path(harmonized_png).name == "cat_fixed.png"
    original = load_image_array(path)
    harmonized = load_image_array(harmonized_png)
    assert harmonized.shape == original.shape
    scorer = served.demo.harmonizer_for_tests.scorer
    soft = region.astype(np.float32)
    expected = f"harmony {scorer(original, soft):.2f} → {scorer(harmonized, soft):.2f}"
    assert expected in scores and f"{original.shape[1]}×{original.shape[0]} px" in scores
    assert np.array_equal(harmonized[~region], original[~region])  # untouched outside the region
    assert harmonized[region].astype(int).mean() > original[region].astype(int).mean() + 20  # brightened inside
    assert np.array_equal(load_image_array(before_png), original)  # small photo: shown at its own size
    assert np.array_equal(load_image_array(after_png), harmonized)


def test_model_cache_loads_once_per_model_and_weights() -> None:
    from inharmony.app.models import UNTRAINED, ModelCache

    cache = ModelCache(precision=None, device="cpu")
    first = cache.get("dirl_resnet18", UNTRAINED)
    assert cache.get("dirl_resnet18", UNTRAINED) is first
    assert cache.loads == 1


def test_model_cache_keeps_the_most_recent_models() -> None:
    from inharmony.app.models import ModelCache

    loaded: list[tuple[str, str | None]] = []

    def loader(model: str, weights: str | None) -> nn.Module:
        loaded.append((model, weights))
        return TinyLocalizer()

    cache = ModelCache(precision=None, device="cpu", capacity=1, loader=loader)
    first = cache.get("tiny", "a.safetensors")
    assert cache.get("tiny", " a.safetensors ") is first  # the same choice, however typed
    cache.get("tiny", "b.safetensors")
    assert not cache.has("tiny", "a.safetensors")  # capacity 1: the older one went
    cache.get("tiny", "a.safetensors")
    assert loaded == [("tiny", "a.safetensors"), ("tiny", "b.safetensors"), ("tiny", "a.safetensors")]


def test_offline_published_weights_give_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from inharmony.app.models import PUBLISHED, ModelCache
    from inharmony.errors import HubUnreachableError

    def offline(model: str, weights: str | None) -> nn.Module:
        assert weights is None  # "published" is inharmony.load(model) with no weights
        raise HubUnreachableError(f"cannot download {model}: the Hugging Face Hub could not be reached")

    cache = ModelCache(precision=None, device="cpu", loader=offline)
    with pytest.raises(HubUnreachableError, match="could not be reached"):
        cache.get("madisnet", PUBLISHED)


def test_bundled_examples_are_readable_composites() -> None:
    from inharmony.app.bundled import EXAMPLE_PHOTOS, example_paths

    paths = example_paths()
    assert [p.name for p in paths] == sorted(f"{name}_composite.png" for name in EXAMPLE_PHOTOS)
    for path in paths:
        image = load_image_array(path)
        mask = read_grey(str(path.with_name(path.name.replace("_composite", "_mask"))))
        assert max(image.shape[:2]) == 320 and mask.shape == image.shape[:2]
        assert 0.05 < (mask > 0).mean() < 0.35  # the synthetic region the example's colour was changed in


def test_cli_without_gradio_says_how_to_install(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from inharmony.cli.app import app

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio → ImportError
    monkeypatch.delitem(sys.modules, "inharmony.app.page", raising=False)
    assert app(model="dirl_resnet18", weights="untrained") == 2
    assert "pip install 'inharmony[app]'" in capsys.readouterr().err
