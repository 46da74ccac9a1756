"""Predictor: every input kind, output at the input's size in [0, 1], bad inputs, helpers.

Each input kind is compared with an independent reference: the same picture given as a plain
RGB uint8 array, pushed through the network by hand (cv2 resize as the evaluation preprocessing
defines it: bilinear, or area when shrinking with the fast pixels; ImageNet normalisation; bilinear
resize back with torch), not through the Predictor's code path.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import inharmony
from inharmony.inference import ImageReadError, Predictor, binarize, load_image, mask_to_image, overlay

SIZE = 32
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = inharmony.create_model("dirl_resnet18", decoder_channels=8).eval()
    # Random BatchNorm statistics so that the output depends visibly on the input.
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return net


@pytest.fixture(scope="module")
def predictor(model):
    return Predictor(model, size=SIZE, device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def rgb():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    base[10:30, 20:40] = (250, 20, 20)  # a region unlike the rest
    return base


def reference_mask(model, rgb_uint8: np.ndarray) -> np.ndarray:
    """Network output for an upright RGB uint8 array, computed without the Predictor."""
    from inharmony.preprocessing import EVAL_PIXELS

    shrinks = rgb_uint8.shape[0] > SIZE or rgb_uint8.shape[1] > SIZE
    interpolation = cv2.INTER_AREA if shrinks and EVAL_PIXELS.area_for_downscale else cv2.INTER_LINEAR
    small = cv2.resize(rgb_uint8, (SIZE, SIZE), interpolation=interpolation).astype(np.float32)
    x = torch.from_numpy(((small / 255.0 - MEAN) / STD).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        prob = model(x)["mask"]
    full = F.interpolate(prob, size=rgb_uint8.shape[:2], mode="bilinear", align_corners=False)
    return full[0, 0].numpy()


def _assert_mask(mask, shape):
    assert isinstance(mask, np.ndarray)
    assert mask.dtype == np.float32
    assert mask.shape == shape
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


def test_array_matches_reference(predictor, model, rgb):
    mask = predictor(rgb)
    _assert_mask(mask, rgb.shape[:2])
    np.testing.assert_allclose(mask, reference_mask(model, rgb), atol=1e-4)
    assert mask.std() > 0  # not a constant map


def test_path_and_pil_inputs(predictor, model, rgb, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    expected = reference_mask(model, rgb)
    np.testing.assert_allclose(predictor(path), expected, atol=1e-4)
    np.testing.assert_allclose(predictor(str(path)), expected, atol=1e-4)
    np.testing.assert_allclose(predictor(Image.fromarray(rgb)), expected, atol=1e-4)


def test_jpeg_path_is_close_to_reference(predictor, model, rgb, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    mask = predictor(path)
    _assert_mask(mask, rgb.shape[:2])
    np.testing.assert_allclose(mask, reference_mask(model, decoded), atol=1e-4)


def test_grayscale_is_repeated_to_rgb(predictor, model, rgb, tmp_path):
    grey = rgb[..., 0]
    expected = reference_mask(model, np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_allclose(predictor(grey), expected, atol=1e-4)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_allclose(predictor(tmp_path / "grey.png"), expected, atol=1e-4)


def test_rgba_alpha_is_dropped(predictor, model, rgb, tmp_path):
    alpha = np.random.default_rng(1).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    rgba = np.dstack([rgb, alpha])
    expected = reference_mask(model, rgb)
    np.testing.assert_allclose(predictor(rgba), expected, atol=1e-4)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_allclose(predictor(tmp_path / "rgba.png"), expected, atol=1e-4)


def test_16_bit_images_are_scaled(predictor, model, rgb, tmp_path):
    grey8 = rgb[..., 1]
    grey16 = grey8.astype(np.uint16) * 257  # 8-bit value v is 257·v in 16 bits
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    expected = reference_mask(model, np.repeat(grey8[..., None], 3, axis=2))
    np.testing.assert_allclose(predictor(tmp_path / "grey16.png"), expected, atol=1e-4)
    np.testing.assert_allclose(predictor(rgb.astype(np.uint16) * 257), reference_mask(model, rgb), atol=1e-4)


def test_float_array_in_unit_range(predictor, model, rgb):
    np.testing.assert_allclose(predictor(rgb / 255.0), reference_mask(model, rgb), atol=1e-4)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotation_is_applied(predictor, model, rgb, tmp_path, orientation):
    # The file stores the pixels rotated and says how to turn them upright; the mask must be upright.
    upright = rgb
    turns = {3: 2, 6: 1, 8: 3}[orientation]  # np.rot90 turns counter-clockwise
    stored = np.ascontiguousarray(np.rot90(upright, k=turns))
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{orientation}.png"
    image.save(path, exif=exif)
    assert np.array_equal(np.asarray(load_image(path)), upright)
    mask = predictor(path)
    _assert_mask(mask, upright.shape[:2])
    np.testing.assert_allclose(mask, reference_mask(model, upright), atol=1e-4)


def test_files_opencv_cannot_decode_are_read_with_pillow(predictor, model, rgb, tmp_path):
    # A 32-bit float TIFF (Pillow mode "F", values in [0, 1]): OpenCV refuses it, Pillow reads it.
    grey = rgb[..., 2]
    Image.fromarray(grey.astype(np.float32) / 255.0, mode="F").save(tmp_path / "float.tif")
    assert cv2.imread(str(tmp_path / "float.tif")) is None
    expected = reference_mask(model, np.repeat(grey[..., None], 3, axis=2))
    np.testing.assert_allclose(predictor(tmp_path / "float.tif"), expected, atol=1e-4)


def test_batch_of_mixed_inputs(predictor, model, rgb, tmp_path):
    path = tmp_path / "a.png"
    other = rgb[:40, :50].copy()
    Image.fromarray(other).save(path)
    masks = predictor([rgb, path, Image.fromarray(rgb[:20, :30])])  # batch_size 2: two forward passes
    assert [m.shape for m in masks] == [(45, 61), (40, 50), (20, 30)]
    np.testing.assert_allclose(masks[0], reference_mask(model, rgb), atol=1e-4)
    np.testing.assert_allclose(masks[1], reference_mask(model, other), atol=1e-4)
    stacked = predictor(np.stack([rgb, rgb]))
    assert isinstance(stacked, list) and len(stacked) == 2


def test_huge_image_is_downscaled_on_decode(predictor, tmp_path):
    # 10,000 px on the long side; predicted at full size without a full-size float tensor.
    picture = np.zeros((600, 10_000, 3), dtype=np.uint8)
    picture[:, 4000:6000] = (200, 50, 50)
    path = tmp_path / "wide.jpg"
    Image.fromarray(picture).save(path, quality=80)
    mask = predictor(path)
    _assert_mask(mask, (600, 10_000))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 10, 3), np.uint8), "zero size"),
        (np.zeros((1, 1, 3), np.uint8), "1×1 px"),
        (np.zeros((20, 20, 5), np.uint8), "expected an H×W×3"),
        (np.zeros((20, 20, 3), np.int32), "unsupported dtype"),
        (np.full((20, 20, 3), 2.0), "values in [0, 1]"),
    ],
)
def test_bad_arrays_have_specific_messages(predictor, bad, message):
    with pytest.raises(ImageReadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        predictor(bad)


def test_bad_files_have_specific_messages(predictor, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not a JPEG")
    with pytest.raises(ImageReadError, match=r"cannot read .*corrupt\.jpg as an image"):
        predictor(corrupt)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "full.png")
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(ImageReadError, match=r"truncated\.png"):
        predictor(truncated)
    one_pixel = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(one_pixel)
    with pytest.raises(ImageReadError, match="1×1 px"):
        predictor(one_pixel)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        predictor(tmp_path / "missing.png")
    with pytest.raises(TypeError, match="call the model directly"):
        predictor(torch.zeros(3, 32, 32))


def test_size_must_be_a_multiple_of_16(model):
    with pytest.raises(ValueError, match="multiples of 16"):
        Predictor(model, size=50)


def test_default_size_comes_from_the_weights_config(model):
    assert Predictor(model, device="cpu").size == (224, 224)


def test_binarize_mask_image_and_overlay(rgb):
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[5:15, 5:25] = 0.9
    mask[0, 0] = 0.5
    binary = binarize(mask)
    assert binary.dtype == bool and binary.sum() == 10 * 20 + 1
    grey = np.asarray(mask_to_image(mask))
    assert grey.dtype == np.uint8 and grey[6, 6] == round(0.9 * 255) and grey[40, 40] == 0
    out = np.asarray(overlay(rgb, mask, color=(0, 255, 0), alpha=1.0)).astype(np.float32)
    expected = rgb.astype(np.float32) * (1 - mask[..., None]) + np.array([0, 255, 0]) * mask[..., None]
    assert np.abs(out - expected).max() <= 0.5 + 1e-4  # rounding to uint8
    assert np.array_equal(out[40:, 40:], rgb[40:, 40:])  # untouched where p = 0
    with pytest.raises(ValueError, match="does not match"):
        overlay(rgb, mask[:10])


def test_inference_benchmark_runs(tmp_path, capsys, rgb):
    from inharmony.cli import main

    photo = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(photo)
    report = tmp_path / "report.json"
    args = ["bench", "inference", "--models", "dirl_resnet18", "--size", "32", "--batches", "1,2", "--repeats", "1",
            "--no-onnx", "--photo", str(photo), "--threads", "1", "--json", str(report)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Predictor, one 61×45 photo end to end" in out and "mask back to 61×45" in out
    data = json.loads(report.read_text())
    titles = [section["title"] for section in data["sections"]]
    assert titles[0].startswith("machine ceiling: the best 3×3 conv of 64→64 at 224², 256→256 at 56², 512→512 at 28²")
    assert titles[1:3] == ["dirl_resnet18 32² batch 1", "dirl_resnet18 32² batch 2"]
    auto = data["results"]["auto"]
    assert data["env"]["cpu_kind"] == auto["cpu_kind"] and f"CPU kind {auto['cpu_kind']}" in out
    assert data["results"]["conv_ceiling_gflops"]["torch fp32"] > 0 and data["results"]["gflop_per_image"]
    assert data["sections"][0]["notes"][-1] == "the best of two measurements, at the start and at the end of this run"
    rows = {row["name"]: row for row in data["sections"][2]["contenders"]}
    expected = ["eager fp32", "optimized fp32", "optimized bf16"]
    if auto["backend"] == "torch":  # --no-onnx: an ONNX Runtime choice is named, not timed
        expected.append(f"auto → torch {auto['precision']}")
    assert list(rows) == expected
    assert all(row["extra"]["GFLOP/s"] > 0 for row in rows.values())
    assert rows["eager fp32"]["ratio"] == 1.0 and rows["eager fp32"]["extra"]["max_diff"] == 0.0
    assert rows["optimized fp32"]["extra"]["max_diff"] < 1e-5
    assert 0 < rows["optimized bf16"]["extra"]["max_diff"] < 0.1  # bf16 moves the mask a little, not much


# --------------------------------------------------------------------------- silently wrong inputs (issue 12)


def test_nan_or_inf_input_is_refused_with_its_place(predictor, rgb):
    values = rgb.astype(np.float32) / 255.0
    values[7, 11, 2] = np.nan
    with pytest.raises(ImageReadError, match=r"1 NaN/inf value\(s\), the first at index \(7, 11, 2\).*nan_to_num"):
        predictor(values)
    batch = torch.zeros(2, 3, SIZE, SIZE)
    batch[1, 0, 3, 4] = float("inf")
    with pytest.raises(ImageReadError, match=r"NaN/inf value\(s\), the first at index \(1, 0, 3, 4\)"):
        predictor.forward_batch(batch)  # a NaN mask before the fix


def test_threshold_outside_zero_one_is_refused():
    mask = np.full((4, 4), 0.7, np.float32)
    assert binarize(mask, 0.5).all()
    for bad in (1.5, 1.0, 0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            binarize(mask, bad)


def test_numpy_array_given_to_the_model_says_what_to_do(model):
    with pytest.raises(TypeError, match=r"got numpy\.ndarray of shape \(1, 3, 32, 32\).*inharmony\.Predictor"):
        model(np.zeros((1, 3, 32, 32), np.float32))  # AttributeError: 'numpy.ndarray' ... before the fix


def test_predictor_arguments_that_are_not_models(model, tmp_path, predictor):
    with pytest.raises(TypeError, match=r"Predictor needs a model.*got NoneType"):
        Predictor(None)
    folder = tmp_path / "photos"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"photos is a folder without config\.json.*Predictor\('dirl', weights="):
        Predictor(str(folder))
    with pytest.raises(ImageReadError, match=r"is a folder; the Predictor takes image files.*iter_image_files"):
        predictor(folder)  # "image not found" before the fix
    hub = model.save_pretrained(tmp_path / "hub", model_kwargs={"decoder_channels": 8})
    assert Predictor(str(hub), size=SIZE, device="cpu").model.pretrained_cfg.architecture == "dirl_resnet18"


def test_network_masks_then_resize_equals_predict(predictor, rgb):
    ((prob, size),) = predictor.network_masks([rgb])
    assert prob.shape == (SIZE, SIZE) and size == rgb.shape[:2]
    np.testing.assert_allclose(inharmony.inference.resize_mask(prob, *size), predictor(rgb), atol=1e-6)
