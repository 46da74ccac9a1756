"""Huge images: full-size masks and overlays are built row band by row band in 8 bits.

Before the fix ``inharmony predict`` held a full-size float32 mask and float32 copies of the image
for the overlay: a 12000×12000 JPEG took it past 8 GB (9.5 GB measured). The mechanism is tested
here cheaply: the banded resize equals the one-shot resize, the 8-bit mask and the in-place tint equal
what the float path wrote, and ``predict`` on a 4-megapixel JPEG allocates (in NumPy, as traced by
tracemalloc) a small multiple of the image, not the ~57 bytes per pixel of the float path. (Measured
outside the suite on a 12000×12000 JPEG: 9.48 GB peak RSS before, 1.84 GB after.)
"""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest
import torch

import inharmony
from inharmony.cli import main
from inharmony.inference import mask_to_image, overlay, resize_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prob():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.random((32, 32)).astype(np.float32), (0, 0), 2)  # a smooth map in [0, 1]


@pytest.mark.parametrize(("height", "width", "rows"), [(301, 457, 7), (1000, 96, 256), (20, 27, 3), (64, 64, 64)])
def test_banded_resize_equals_one_shot(prob, height, width, rows):
    from inharmony.inference import resize_mask_bands

    bands = list(resize_mask_bands(prob, height, width, rows=rows))
    assert [start for start, _ in bands] == list(range(0, height, rows))
    stacked = np.concatenate([band for _, band in bands])
    assert stacked.dtype == np.float32 and stacked.shape == (height, width)
    np.testing.assert_allclose(stacked, resize_mask(prob, height, width), atol=2e-6)
    torch_map = torch.from_numpy(prob)
    np.testing.assert_allclose(np.concatenate([b for _, b in resize_mask_bands(torch_map, height, width)]),
                               stacked, atol=1e-7)  # fmt: skip


def test_uint8_mask_and_tint_equal_the_float_path(prob):
    from inharmony.inference import resize_mask_uint8

    height, width = 517, 389
    full = resize_mask(prob, height, width)
    mask = resize_mask_uint8(prob, height, width)
    assert mask.dtype == np.uint8 and mask.shape == (height, width)
    assert np.abs(mask.astype(int) - np.asarray(mask_to_image(full), dtype=int)).max() <= 1
    binary = resize_mask_uint8(prob, height, width, threshold=0.5)
    assert set(np.unique(binary)) <= {0, 255}
    assert ((binary == 255) != (full >= 0.5)).mean() < 1e-3  # only float rounding at the threshold
    image = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    tinted = image.copy()
    resize_mask_uint8(prob, height, width, tint=tinted)
    assert np.abs(tinted.astype(int) - np.asarray(overlay(image, full), dtype=int)).max() <= 1
    with pytest.raises(ValueError, match="does not match the mask size"):
        resize_mask_uint8(prob, height, width, tint=image[:-1])


def test_predict_memory_is_a_small_multiple_of_the_image(tmp_path):
    height, width = 4000, 1000  # 4 MP, tall: the row bands' fixed cost (W·256 floats) is small beside it
    yy, xx = np.mgrid[0:height, 0:width]
    picture = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 70])
    weights = inharmony.create_model("dirl_resnet18", decoder_channels=8).save_pretrained(
        tmp_path / "w", model_kwargs={"decoder_channels": 8}
    )
    out = tmp_path / "out"
    args = ["predict", str(path), "--model", "dirl_resnet18", "--weights", str(weights), "--size", "32",
            "--device", "cpu", "--out", str(out)]  # fmt: skip
    tracemalloc.start()
    try:
        assert main(args) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = height * width
    # One decode (OpenCV's BGR and RGB: 6 bytes/px), the 8-bit mask (1), the PNG bytes, row bands: under
    # 12 bytes/px (7 measured). The float32 mask and overlay copies before the fix: 57.
    assert peak < 12 * pixels, f"peak {peak / pixels:.1f} bytes per pixel"
    mask = cv2.imread(str(out / "big_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (height, width)
    assert cv2.imread(str(out / "big_overlay.png")).shape == (height, width, 3)
