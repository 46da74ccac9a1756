"""Decoding (reduced JPEG decoding, bad files) and the train/eval transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from inharmony.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataError,
    IHarmony4,
    decode_image,
    decode_mask,
    decode_pair,
    eval_transform,
    reduction_factor,
    train_transform,
)
from inharmony.preprocessing import FAST_PIXELS


def _jpeg(h, w, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], -1) + rng.integers(0, 20, (h, w, 3))
    return cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8))[1].tobytes()


def _png(mask: np.ndarray) -> bytes:
    return cv2.imencode(".png", mask)[1].tobytes()


@pytest.mark.parametrize(
    ("h", "w", "min_side", "factor"),
    [(4000, 6000, 224, 8), (4000, 6000, 500, 8), (4000, 6000, 501, 4), (4000, 6000, 1001, 2),
     (4000, 6000, 2001, 1), (480, 640, 224, 2), (480, 640, 241, 1), (100, 100, None, 1)],
)  # fmt: skip
def test_reduction_factor(h, w, min_side, factor):
    assert reduction_factor(h, w, min_side) == factor


def test_reduced_decoding_size_and_mask_follows():
    buf = _jpeg(803, 1201)
    full, size = decode_image(buf)
    assert size == (803, 1201) and full.shape == (803, 1201, 3)
    small, size = decode_image(buf, min_side=100)
    assert size == (803, 1201) and small.shape == (101, 151, 3)  # 1/8, rounded up
    # the reduced decode approximates an area-downscaled full decode
    ref = cv2.resize(full, (151, 101), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(small.astype(float) - ref).mean() < 6
    mask = np.zeros((803, 1201), np.uint8)
    mask[:400] = 255
    image, target = decode_pair(buf, _png(mask), min_side=100)
    assert target.shape == image.shape[:2] == (101, 151)
    assert abs((target >= 0.5).mean() - 400 / 803) < 0.02


def test_decode_is_rgb():
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    image, _ = decode_image(cv2.imencode(".png", bgr)[1].tobytes())
    assert image[0, 0].tolist() == [255, 0, 0]


def test_mask_bit_depths_and_grey_rgb_agree():
    base = np.zeros((20, 30), np.uint8)
    base[5:15, 10:20] = 255
    ref = decode_mask(_png(base))
    assert ref.dtype == np.float32 and set(np.unique(ref)) == {0.0, 1.0}
    np.testing.assert_array_equal(decode_mask(_png(base.astype(np.uint16) * 257)), ref)
    np.testing.assert_array_equal(decode_mask(_png(np.repeat(base[..., None], 3, 2))), ref)


def test_colour_mask_refused():
    m = np.zeros((8, 8, 3), np.uint8)
    m[..., 1] = 255
    with pytest.raises(DataError, match="colour"):
        decode_mask(_png(m), "x.png")


def test_truncated_and_garbage_files_refused():
    buf = _jpeg(64, 64)
    with pytest.raises(DataError, match=r"c_1_1\.jpg: truncated"):
        decode_image(buf[: len(buf) // 2], "c_1_1.jpg")
    trailer = buf + b"\x00" * 4096  # data after the end-of-image marker is not truncation
    assert decode_image(trailer)[0].shape == (64, 64, 3)
    with pytest.raises(DataError, match="not a readable image"):
        decode_image(b"not an image at all", "junk.jpg")
    png = _png(np.zeros((64, 64), np.uint8))
    with pytest.raises(DataError, match=r"m\.png"):
        decode_mask(png[: len(png) // 2], "m.png")


def test_mask_size_mismatch_names_both_files():
    with pytest.raises(DataError, match=r"m\.png is 30x20 but composite c\.jpg is 64x48"):
        decode_pair(_jpeg(48, 64), _png(np.zeros((20, 30), np.uint8)), "c.jpg", "m.png")


# -- transforms --------------------------------------------------------------------------------------


def _pair(h=90, w=120):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.float32)
    mask[:, : w // 3] = 1.0
    return image, mask


def test_eval_transform_official_is_linear_resize_and_strict_threshold():
    image, mask = _pair()
    x, y = eval_transform(48)(image, mask)
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert y.shape == (1, 48, 48) and set(torch.unique(y).tolist()) <= {0.0, 1.0}
    # reference (the authors' test loader): bilinear resize, ImageNet normalisation, mask resized as an image, > 0.5
    ref = cv2.resize(image, (48, 48), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    ref = (ref - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), ref, atol=1e-5)
    ref_mask = cv2.resize(mask, (48, 48), interpolation=cv2.INTER_LINEAR) > 0.5
    np.testing.assert_array_equal(y[0].numpy() > 0, ref_mask)


def test_eval_transform_fast_matches_area_resize_and_normalisation():
    image, mask = _pair()
    x, y = eval_transform(48, pixels=FAST_PIXELS)(image, mask)
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert y.shape == (1, 48, 48) and set(torch.unique(y).tolist()) <= {0.0, 1.0}
    # reference: area resize (downscaling), ImageNet normalisation, mask area-resized then ≥ 0.5
    ref = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    ref = (ref - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), ref, atol=1e-2)
    ref_mask = cv2.resize(mask, (48, 48), interpolation=cv2.INTER_AREA) >= 0.5
    np.testing.assert_array_equal(y[0].numpy() > 0, ref_mask)


def test_mask_is_thresholded_not_nearest():
    # 2x shrink (fast pixels: area). Right pixel of every 2x2 block set: coverage 0.5 → 1 (nearest: 0).
    fast = eval_transform(32, pixels=FAST_PIXELS)
    black = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), np.float32)
    mask[:, 1::2] = 1.0
    assert fast(black, mask)[1].min() == 1.0
    # Top-left pixel only: coverage 0.25 → 0 (nearest would read it: 1).
    mask = np.zeros((64, 64), np.float32)
    mask[::2, ::2] = 1.0
    assert fast(black, mask)[1].max() == 0.0
    # Official pixels: a bilinear value of exactly 0.5 is background (> 0.5, as the authors' loader).
    mask = np.zeros((64, 64), np.float32)
    mask[:, 1::2] = 1.0
    assert eval_transform(32)(black, mask)[1].max() == 0.0


def test_train_transform_crop_scale_and_flip():
    image, mask = _pair(200, 200)
    t = train_transform(64, scale=(0.9, 1.0), hflip=1.0)
    fractions = []
    for _ in range(10):
        x, y = t(image, mask)
        assert x.shape == (3, 64, 64) and y.shape == (1, 64, 64)
        assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
        fractions.append(y.mean().item())
        # always flipped: the foreground (left third of the source) is now on the right
        assert y[0, :, -1].all() and not y[0, :, 0].any()
    assert all(0.2 < f < 0.45 for f in fractions)  # ~1/3 kept by a ≥ 90 % crop
    assert train_transform(64, hflip=0.0)(image, mask)[1][0, :, 0].all()
    assert t.min_source_side >= 64 / np.sqrt(0.9 * 0.75) - 1


def test_dataset_items_and_reduced_decoding_flag(fake_ihd):
    ds = IHarmony4(fake_ihd, "test", le50=False, transform=eval_transform(32))
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert item["subset"] == "HCOCO" and item["path"].startswith("HCOCO/composite_images/")
    raw = IHarmony4(fake_ihd, "test", le50=False)[0]
    assert raw["image"].dtype == np.uint8 and raw["image"].shape[:2] == raw["mask"].shape
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_train_augmentation_follows_torch_seed() -> None:
    """Augmentation draws its randomness from torch's RNG, so seed_everything and resume reproduce it."""
    transform = train_transform(32)
    image = (np.random.RandomState(0).rand(64, 80, 3) * 255).astype(np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    mask[10:30, 20:50] = 1
    torch.manual_seed(0)
    first = [transform(image, mask) for _ in range(6)]
    torch.manual_seed(0)
    second = [transform(image, mask) for _ in range(6)]
    for (img_a, mask_a), (img_b, mask_b) in zip(first, second, strict=True):
        assert torch.equal(img_a, img_b) and torch.equal(mask_a, mask_b)
    assert any(not torch.equal(first[0][0], img) for img, _ in first[1:]), "augmentation never varied"


# -- the authors' crop-redraw rule ------------------------------------------------------------------


def _corner_pair():
    """A 96 px image whose foreground is a 12×12 patch in a corner: small crops often miss it."""
    image = (np.random.RandomState(1).rand(96, 96, 3) * 255).astype(np.uint8)
    mask = np.zeros((96, 96), np.float32)
    mask[:12, :12] = 1.0
    return image, mask


def test_crop_redraw_keeps_only_crops_with_foreground():
    image, mask = _corner_pair()
    torch.manual_seed(0)
    plain = train_transform(32, scale=(0.2, 0.3), hflip=0.0)
    empty_plain = sum(plain(image, mask)[1].sum().item() == 0 for _ in range(40))
    assert empty_plain > 10, "the setting should lose the foreground often, or the test proves nothing"
    strict = train_transform(32, scale=(0.2, 0.3), hflip=0.0, min_foreground=3.0, keep_prob=0.0)
    outs = [strict(image, mask)[1] for _ in range(40)]
    assert all(y.sum().item() > 0 for y in outs)
    assert strict.draws > 40  # crops were redrawn


def test_crop_redraw_keep_probability_and_bound():
    image = np.zeros((64, 64, 3), np.uint8)
    empty = np.zeros((64, 64), np.float32)  # no crop ever passes: only the keep-anyway draw ends the loop
    torch.manual_seed(0)
    rule = train_transform(32, min_foreground=10.0, keep_prob=0.05)
    for _ in range(300):
        rule(image, empty)
    assert 14 < rule.draws / 300 < 27  # geometric with p = 0.05: mean 20 draws per sample
    capped = train_transform(32, min_foreground=10.0, keep_prob=0.0)
    capped.max_draws = 7
    capped(image, empty)
    assert capped.draws == 7
    never = train_transform(32, min_foreground=None)
    never(image, empty)
    assert never.draws == 1
    with pytest.raises(ValueError, match="keep_prob"):
        train_transform(32, min_foreground=10.0, keep_prob=1.5)


def test_crop_redraw_follows_torch_seed():
    image, mask = _corner_pair()
    t = train_transform(32, scale=(0.2, 0.3), min_foreground=3.0, keep_prob=0.05)
    torch.manual_seed(3)
    first = [t(image, mask) for _ in range(8)]
    torch.manual_seed(3)
    second = [t(image, mask) for _ in range(8)]
    for (a, ma), (b, mb) in zip(first, second, strict=True):
        assert torch.equal(a, b) and torch.equal(ma, mb)
