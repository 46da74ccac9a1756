"""Files that used to decode to silently wrong pixels on the data path (issue 12).

* EXIF orientation: OpenCV turns a composite upright; its mask (stored on the composite's stored pixels)
  must be turned the same way, for all 8 orientations, never stretched to the turned size.
* 0/1 masks: read as empty when scaled by 255; :func:`mask_full_scale` makes them equal to 0/255 masks.
* JPEGs corrupted in the middle (not truncated): libjpeg's "Corrupt JPEG data" warnings are errors naming
  the file; valid JPEGs of every common kind still decode, and nothing else written to stderr is lost.
"""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from inharmony.data import IHarmony4, eval_transform
from inharmony.data.decode import decode_mask, decode_pair, mask_fraction
from inharmony.errors import DataError
from inharmony.imageio import apply_orientation, decode_image, image_header, mask_full_scale, read_mask_array

RED = (250, 20, 20)
H, W = 48, 80  # stored size of the EXIF composites: not square, so turning swaps the sides


def _png(array: np.ndarray) -> bytes:
    return cv2.imencode(".png", array)[1].tobytes()


def _jpeg(rgb: np.ndarray, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", **{"quality": 95, **save})
    return out.getvalue()


def _marked_pair() -> tuple[np.ndarray, np.ndarray]:
    """A grey photo with a red block in the top-left quarter (8-px aligned), and the block's 0/255 mask."""
    rgb = np.full((H, W, 3), 110, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    rgb[8:24, 8:32] = RED
    mask[8:24, 8:32] = 255
    return rgb, mask


def _red(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)


def _with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    return _jpeg(rgb, exif=exif)


# -- EXIF orientation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("min_side", [None, 16])  # official full-size decode, and the fast reduced one
def test_exif_composite_and_mask_turn_together(orientation, min_side):
    rgb, mask = _marked_pair()
    composite = _with_orientation(rgb, orientation)
    image, target = decode_pair(composite, _png(mask), "c.jpg", "m.png", min_side=min_side)
    # The composite is turned as OpenCV's cv2.imread / IMREAD_COLOR turns it (what the authors' loader saw).
    opencv = cv2.cvtColor(cv2.imdecode(np.frombuffer(composite, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if min_side is None:
        np.testing.assert_array_equal(image, opencv)
    else:
        assert image.shape == (opencv.shape[0] // 2, opencv.shape[1] // 2, 3)
    assert target.shape == image.shape[:2]
    # The mask lies on the red block wherever it went (rotation, flip or transpose), never stretched.
    foreground = target > 0.5
    assert foreground.sum() > 0
    disagree = np.count_nonzero(foreground != _red(image)) / foreground.size
    assert disagree < 0.02, f"orientation {orientation}: {disagree:.1%} of the pixels disagree"


def test_apply_orientation_is_the_exif_transform_for_all_eight():
    stored = (np.arange(H * W).reshape(H, W) % 251).astype(np.uint8)
    for orientation in range(1, 9):
        image = Image.fromarray(stored)
        image.getexif()[0x0112] = orientation
        expected = np.asarray(ImageOps.exif_transpose(image))
        np.testing.assert_array_equal(apply_orientation(stored, orientation), expected)


def test_exif_header_is_read_without_decoding():
    rgb, _ = _marked_pair()
    header = image_header(_with_orientation(rgb, 6), "c.jpg")
    assert (header.height, header.width, header.orientation, header.format) == (H, W, 6, "JPEG")
    assert header.upright_hw == (W, H)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_damaged_exif_block_leaves_the_image_as_stored():
    rgb, mask = _marked_pair()
    buf = _jpeg(rgb, exif=b"Exif\x00\x00MM\x00*broken")
    assert image_header(buf).orientation == 1
    image, target = decode_pair(buf, _png(mask))
    assert image.shape == (H, W, 3) and target.shape == (H, W)


def test_a_mask_stored_at_the_turned_size_is_refused_not_stretched():
    rgb, mask = _marked_pair()
    with pytest.raises(DataError, match=r"m\.png is 48x80 but composite c\.jpg is 80x48 \(its EXIF-turned size"):
        decode_pair(_with_orientation(rgb, 6), _png(np.ascontiguousarray(mask.T)), "c.jpg", "m.png")


def test_dataset_items_keep_mask_and_composite_together(tmp_path):
    rgb, mask = _marked_pair()
    subset = tmp_path / "HExif"
    for folder in ("composite_images", "masks", "real_images"):
        (subset / folder).mkdir(parents=True)
    (subset / "composite_images" / "e_1_1.jpg").write_bytes(_with_orientation(rgb, 8))
    (subset / "masks" / "e_1.png").write_bytes(_png(mask))
    (subset / "real_images" / "e.jpg").write_bytes(_jpeg(rgb))
    (subset / "HExif_test.txt").write_text("e_1_1.jpg\n")
    item = IHarmony4(tmp_path, "test", le50=False, transform=eval_transform(32))[0]
    image = (
        item["image"] * torch.tensor([0.229, 0.224, 0.225])[:, None, None]
        + torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    )
    red = _red((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert np.count_nonzero((item["mask"][0].numpy() > 0.5) != red) / red.size < 0.05


# -- 0/1 masks -------------------------------------------------------------------------------------------


def test_mask_full_scale():
    assert mask_full_scale(np.array([[0, 1, 1]], np.uint8)) == 1
    assert mask_full_scale(np.array([[0, 1, 1]], np.uint16)) == 1
    assert mask_full_scale(np.array([[0, 255]], np.uint8)) == 255
    assert mask_full_scale(np.array([[0, 128]], np.uint8)) == 255  # a soft mask keeps its scale
    assert mask_full_scale(np.array([[0, 65535]], np.uint16)) == 65535
    assert mask_full_scale(np.zeros((3, 3), np.uint8)) == 255  # empty: nothing to scale


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_zero_one_masks_read_like_zero_255_ones(dtype):
    rgb, mask = _marked_pair()
    full = np.iinfo(dtype).max
    zero_one, zero_full = (mask // 255).astype(dtype), (mask // 255).astype(dtype) * full
    np.testing.assert_array_equal(decode_mask(_png(zero_one)), decode_mask(_png(zero_full)))
    assert decode_mask(_png(zero_one)).max() == 1.0
    assert mask_fraction(read_mask_array(_png(zero_one))) == mask_fraction(zero_full) == (16 * 24) / (H * W)
    png = _png(rgb[..., ::-1].copy())
    np.testing.assert_array_equal(decode_pair(png, _png(zero_one))[1], decode_pair(png, _png(zero_full))[1])
    # With reduced decoding the mask is area-resized first; still the same.
    jpeg = _jpeg(rgb)
    np.testing.assert_array_equal(
        decode_pair(jpeg, _png(zero_one), min_side=16)[1], decode_pair(jpeg, _png(zero_full), min_side=16)[1]
    )


# -- JPEGs corrupted in the middle -----------------------------------------------------------------------


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width * 220, yy / height * 200, (xx + yy) / (height + width) * 255], axis=-1)
    return np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def _corrupt_middle(buf: bytes, seed: int, length: int = 64) -> bytes:
    """Overwrite ``length`` bytes in the middle of the entropy-coded scan; the file keeps its size and its EOI."""
    start = buf.index(b"\xff\xda")
    scan_start = start + 2 + int.from_bytes(buf[start + 2 : start + 4], "big")
    end = buf.rindex(b"\xff\xd9")
    middle = (scan_start + end) // 2
    noise = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    bad = buf[:middle] + noise + buf[middle + length :]
    assert len(bad) == len(buf) and bad.endswith(b"\xff\xd9")
    return bad


GOOD = _jpeg(_photo(96, 128), quality=90)
CORRUPT = [_corrupt_middle(GOOD, seed) for seed in range(3)]


@pytest.mark.parametrize("seed", range(3))
def test_a_jpeg_corrupt_in_the_middle_is_an_error_naming_the_file(seed, capfd):
    bad = CORRUPT[seed]
    assert cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR) is not None  # OpenCV alone: garbage
    assert "Corrupt JPEG data" in capfd.readouterr().err  # ... and a line on stderr, nothing a program sees
    for min_side in (None, 24):
        with pytest.raises(
            DataError, match=r"HCOCO/c1_1_1\.jpg: corrupt JPEG \(libjpeg: Corrupt JPEG data.*re-download"
        ):
            decode_image(bad, "HCOCO/c1_1_1.jpg", min_side)
    with pytest.raises(DataError, match=r"c1_1_1\.jpg: corrupt JPEG"):
        decode_pair(bad, _png(np.zeros((96, 128), np.uint8)), "c1_1_1.jpg", "c1_1.png")
    # The libjpeg line became the error: not printed a second time.
    assert "Corrupt JPEG data" not in capfd.readouterr().err


def test_a_corrupt_jpeg_mask_is_an_error_too():
    mask = np.zeros((96, 128), np.uint8)
    mask[20:70, 30:90] = 255
    bad = _corrupt_middle(cv2.imencode(".jpg", cv2.add(mask, _photo(96, 128)[..., 0] // 8))[1].tobytes(), 1, 200)
    with pytest.raises(DataError, match=r"m\.jpg: corrupt JPEG"):
        read_mask_array(bad, "m.jpg")


def _valid_jpegs() -> dict[str, bytes]:
    rgb = _photo(72, 104, 3)
    plain = _jpeg(rgb)
    restarts = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])[1].tobytes()
    assert b"\xff\xd0" in restarts
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, "JPEG", quality=95)
    return {
        "baseline": plain,
        "progressive": _jpeg(rgb, progressive=True),
        "optimized huffman": _jpeg(rgb, optimize=True),
        "4:4:4": _jpeg(rgb, subsampling=0),
        "restart markers": restarts,
        "grey": _jpeg(rgb[..., 1]),
        "cmyk": cmyk.getvalue(),
        "exif": _with_orientation(rgb, 3),
        "trailing data after EOI": plain + b"\x00" * 300 + b"camera trailer \xff\xd8\xff\xe1 junk",
        "quality 5": _jpeg(rgb, quality=5),
    }


@pytest.mark.parametrize("kind", list(_valid_jpegs()))
def test_valid_jpegs_are_not_rejected(kind, capfd):
    buf = _valid_jpegs()[kind]
    image, stored = decode_image(buf, kind)
    assert stored == (72, 104) and image.shape == (72, 104, 3)
    assert decode_image(buf, kind, min_side=24)[0].shape == (36, 52, 3)
    assert capfd.readouterr().err == ""


def test_concurrent_decodes_blame_only_the_corrupt_files():
    # Descriptor 2 is process-wide; threads decoding at once must each get their own verdict.
    files = [GOOD, CORRUPT[0], GOOD, CORRUPT[1], GOOD, GOOD, CORRUPT[2], GOOD] * 3
    verdicts: list[bool | None] = [None] * len(files)

    def work(i: int) -> None:
        try:
            decode_image(files[i], f"f{i}.jpg")
            verdicts[i] = True
        except DataError:
            verdicts[i] = False

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(files))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verdicts == [buf is GOOD for buf in files]


def test_other_stderr_output_during_a_decode_is_not_lost(capfd):
    # Output from another thread while a capture is active is written back afterwards.
    stop = threading.Event()

    def chatter() -> None:
        import os

        while not stop.is_set():
            os.write(2, b"chatter\n")

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        for _ in range(20):
            with pytest.raises(DataError):
                decode_image(CORRUPT[0])
    finally:
        stop.set()
        thread.join()
    err = capfd.readouterr().err
    assert "chatter" in err and "Corrupt JPEG data" not in err


def test_a_dataloader_worker_reports_the_corrupt_file(tmp_path, fake_ihd, fake_ihd_spec):
    root = tmp_path / "ihd"
    shutil.copytree(fake_ihd, root)
    spec = next(item for item in fake_ihd_spec if item.split == "test")
    path = root / spec.path
    path.write_bytes(_corrupt_middle(path.read_bytes(), 0, length=200))
    dataset = IHarmony4(root, "test", le50=False, transform=eval_transform(32), list_file=root / "IHD_test.txt")
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, num_workers=1)
    with pytest.raises(DataError, match=rf"{Path(spec.path).name}: corrupt JPEG"):
        for _ in loader:
            pass
