"""The one image decoder and encoder: every file inharmony reads or writes as pixels goes through here.

Reading: :func:`image_header` reads the size, EXIF orientation and format without decoding pixels;
:func:`decode_image` decodes with OpenCV (RGB ``uint8``, EXIF orientation applied, a large JPEG optionally
at 1/2, 1/4 or 1/8 scale) and refuses a JPEG that libjpeg reports as truncated or corrupt, which OpenCV
would decode to grey or garbage; :func:`read_image` takes a path, a PIL image or an array (formats OpenCV
cannot read, such as 32-bit TIFF, through Pillow) and is what :func:`load_image_array` and the
:class:`~inharmony.inference.Predictor` use. Masks: :func:`read_mask_array` (stored integers),
:func:`mask_full_scale` (0/1 masks), :func:`load_mask_array` (float in [0, 1]). Writing: :func:`encode_png`
and :func:`write_png` (atomic). :func:`iter_image_files` lists the images named on a command line.
Masks live in :mod:`inharmony.imageio.masks`, libjpeg's checks in ``_libjpeg``; import both from here.

Example:
    >>> png = encode_png(np.zeros((20, 30, 3), np.uint8))
    >>> image_header(png)
    ImageHeader(height=20, width=30, orientation=1, format='PNG')
    >>> decode_image(png)[0].shape
    (20, 30, 3)
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError, ImageReadError
from ..files import atomic_write_bytes
from ._libjpeg import decode_checked, imdecode, is_jpeg, jpeg_complete
from .masks import load_mask_array, mask_full_scale, read_mask_array

__all__ = [
    "MIN_SIDE",
    "ImageHeader",
    "ImageInput",
    "apply_orientation",
    "check_finite",
    "decode_checked",
    "decode_image",
    "encode_png",
    "image_header",
    "image_size",
    "iter_image_files",
    "load_image",
    "load_image_array",
    "load_mask_array",
    "mask_full_scale",
    "read_image",
    "read_image_bytes",
    "read_mask_array",
    "reduction_factor",
    "write_png",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray
MIN_SIDE = 8  # smaller images hold no region worth localising; refused with a clear message

_ORIENTATION_TAG = 0x0112
_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip


# --------------------------------------------------------------------------- the header


class ImageHeader(NamedTuple):
    """What an image file's header says, read without decoding pixels.

    Attributes:
        height: Stored height (before EXIF orientation).
        width: Stored width.
        orientation: EXIF orientation, 1 (upright) to 8; 1 when absent or out of range.
        format: Pillow's format name, e.g. ``"JPEG"``, ``"PNG"``.
    """

    height: int
    width: int
    orientation: int
    format: str

    @property
    def upright_hw(self) -> tuple[int, int]:
        """``(height, width)`` once the orientation is applied."""
        return (self.width, self.height) if self.orientation >= 5 else (self.height, self.width)


def image_header(buf: bytes, name: str = "<bytes>") -> ImageHeader:
    """Size, EXIF orientation and format from the file's header only (no pixel decoding).

    The orientation comes from the EXIF block Pillow finds while opening (JPEG APP1, PNG ``eXIf``
    before the image data, WebP), or from a TIFF's own Orientation tag.

    Raises:
        DataError: if the header is not a readable image's (Pillow's error is its ``__cause__``).

    Example:
        >>> image_header(cv2.imencode(".png", np.zeros((20, 30), np.uint8))[1].tobytes())
        ImageHeader(height=20, width=30, orientation=1, format='PNG')
    """
    try:
        with Image.open(io.BytesIO(buf)) as im:
            width, height = im.size
            file_format = im.format or ""
            raw_exif = im.info.get("exif")
            tags = getattr(im, "tag_v2", None)  # TIFF: orientation is a tag of the image itself
    except Exception as err:  # PIL raises several types for bad headers
        raise DataError(f"{name}: not a readable image ({err}); re-download or remove it from the list") from err
    orientation = 1
    try:
        if raw_exif:
            exif = Image.Exif()
            exif.load(raw_exif)
            orientation = exif.get(_ORIENTATION_TAG, 1)
        elif tags is not None:
            orientation = tags.get(_ORIENTATION_TAG, 1)
    except Exception:  # a damaged EXIF block does not make the pixels unreadable: shown as stored, as OpenCV does
        orientation = 1
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
    return ImageHeader(height, width, orientation, file_format)


def image_size(buf: bytes, name: str = "<bytes>") -> tuple[int, int]:
    """``(height, width)`` as stored in the file, from its header only (no pixel decoding).

    Raises:
        DataError: if the header is not a readable image's.

    Example:
        >>> image_size(encode_png(np.zeros((20, 30), np.uint8)))
        (20, 30)
    """
    header = image_header(buf, name)
    return header.height, header.width


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an array of stored pixels (H, W[, C]) upright for EXIF ``orientation`` 1–8.

    The transform ``cv2.imread`` and Pillow's ``ImageOps.exif_transpose`` apply; used on a composite
    and on its mask alike, so both stay on the same pixels.

    Example:
        >>> apply_orientation(np.arange(6, dtype=np.uint8).reshape(2, 3), 6).tolist()  # 90° clockwise
        [[3, 0], [4, 1], [5, 2]]
    """
    if orientation == 2:
        return cv2.flip(array, 1)
    if orientation == 3:
        return cv2.rotate(array, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(array, 0)
    if orientation == 5:
        return cv2.transpose(array)
    if orientation == 6:
        return cv2.rotate(array, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(array), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(array, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return array


def reduction_factor(height: int, width: int, min_side: int | None) -> int:
    """Largest factor in (1, 2, 4, 8) whose reduced image keeps its shorter side ≥ ``min_side``.

    Example:
        >>> reduction_factor(4000, 6000, 448)
        8
        >>> reduction_factor(480, 640, 224)
        2
    """
    if not min_side:
        return 1
    short = min(height, width)
    for factor in (8, 4, 2):
        # libjpeg rounds reduced sizes up
        if -(-short // factor) >= min_side:
            return factor
    return 1


# --------------------------------------------------------------------------- decoding


def decode_image(
    buf: bytes, name: str = "<bytes>", min_side: int | None = None, header: ImageHeader | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a colour image to RGB ``uint8`` (H, W, 3) with OpenCV, EXIF orientation applied.

    The orientation is applied by :func:`apply_orientation` from the header's EXIF (the transform
    ``cv2.imread`` applies), so that a mask stored on the same pixels can be turned the same way.

    Args:
        buf: The encoded file.
        name: Shown in errors.
        min_side: If given and the image is a JPEG, decode at the largest 1/2, 1/4 or 1/8 scale whose
            shorter side stays ≥ ``min_side``.
        header: The file's :func:`image_header`, if already read.

    Returns:
        The image and the file's full-resolution ``(height, width)`` as stored (before EXIF orientation).

    Raises:
        DataError: if the file is not a readable image, or is a truncated or corrupt JPEG (libjpeg's
            "Corrupt JPEG data" warnings are errors here).

    Example:
        >>> rgb, full = decode_image(cv2.imencode(".png", np.zeros((20, 30, 3), np.uint8))[1].tobytes())
        >>> rgb.shape, full
        ((20, 30, 3), (20, 30))
    """
    header = header or image_header(buf, name)
    full = (header.height, header.width)
    jpeg = is_jpeg(buf)
    factor = reduction_factor(*full, min_side) if jpeg else 1
    if jpeg and not jpeg_complete(buf):
        # OpenCV decodes a truncated JPEG without error (grey bottom rows): refuse it.
        raise DataError(f"{name}: truncated JPEG (no end-of-image marker); re-download the file")
    image = imdecode(buf, _REDUCED_COLOR[factor] | cv2.IMREAD_IGNORE_ORIENTATION, name, jpeg)
    if image is None:
        raise DataError(f"{name}: OpenCV cannot decode this image (corrupt or truncated?)")
    return apply_orientation(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), header.orientation), full


# --------------------------------------------------------------------------- any source to RGB


def _name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Image.Image):
        return f"PIL image {source.size[0]}×{source.size[1]} ({source.mode})"
    if isinstance(source, np.ndarray):
        return f"array {source.shape} {source.dtype}"
    return type(source).__name__


def _check_size(width: int, height: int, what: str) -> None:
    if width == 0 or height == 0:
        raise ImageReadError(f"{what} has zero size ({width}×{height} px)")
    if min(width, height) < MIN_SIDE:
        raise ImageReadError(
            f"{what} is {width}×{height} px; at least {MIN_SIDE} px on each side are needed to localise a region"
        )


def check_finite(values: Any, what: str) -> None:
    """Refuse NaN/inf values (a NumPy array or a torch tensor) with their count and the first one's position.

    One such value makes the network's whole mask NaN.

    Raises:
        ImageReadError: if ``values`` holds a NaN or an infinity.

    Example:
        >>> check_finite(np.zeros(3), "x")
        >>> check_finite(np.array([0.0, np.nan]), "x")
        Traceback (most recent call last):
        ...
        inharmony.errors.ImageReadError: x holds 1 NaN/inf value(s), the first at index (1,); ...
    """
    numpy = isinstance(values, np.ndarray)
    bad = ~(np.isfinite(values) if numpy else values.isfinite())
    if not bool(bad.any()):
        return
    first = tuple(int(i) for i in (np.argwhere(bad)[0] if numpy else bad.nonzero()[0]))
    raise ImageReadError(
        f"{what} holds {int(bad.sum())} NaN/inf value(s), the first at index {first}; one such value makes the "
        "network's whole mask NaN. Replace them (e.g. np.nan_to_num / torch.nan_to_num) or fix their source."
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB. Alpha is dropped (not composited): the models never saw it."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        # 16-bit (I;16*) and 32-bit integer or float greyscale: scale to 0-255, as Pillow does not.
        values = np.asarray(image, dtype=np.float64)
        if image.mode == "F" and values.size and values.max() <= 1.0:
            values = values * 255.0
        elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def _array_to_rgb(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageReadError(f"{what}: expected an H×W×3 RGB (or H×W grey, H×W×4 RGBA) array, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], what)
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        check_finite(array, what)
        if array.min() < 0.0 or array.max() > 1.0:
            raise ImageReadError(
                f"{what}: a float array must hold values in [0, 1], got [{array.min():g}, {array.max():g}]; "
                "divide 0-255 values by 255, or pass a uint8 array"
            )
        array = np.rint(array * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageReadError(f"{what}: unsupported dtype {array.dtype}; use uint8 (0-255), uint16 or float in [0, 1]")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)  # grey repeated to RGB
    return np.ascontiguousarray(array[..., :3])  # alpha dropped, as for RGBA files


def _decode_with_pillow(buf: bytes) -> np.ndarray | None:
    """Full-size RGB of a file OpenCV cannot decode (32-bit TIFF, ICO, TGA, ...), or None if Pillow cannot either.

    The data loaders cannot read such files at all, so no evaluation tensor differs by this path.
    """
    try:
        with Image.open(io.BytesIO(buf)) as image:
            return np.asarray(_to_rgb(ImageOps.exif_transpose(image)))
    except (OSError, SyntaxError, ValueError):
        return None


def read_image_bytes(
    buf: bytes, name: str = "<bytes>", min_side: int | None = None, header: ImageHeader | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """An encoded file as ``(RGB uint8 array, (height, width) of the upright full-size image)``.

    :func:`decode_image` (``min_side``: reduced JPEG decoding), or Pillow for a format OpenCV cannot read
    (not for a JPEG: a corrupt one stays an error); images under :data:`MIN_SIDE` px on a side are refused.

    Raises:
        ImageReadError: the bytes are not a readable image, it is too small, or larger than Pillow's
            decompression-bomb limit.

    Example:
        >>> rgb, size = read_image_bytes(encode_png(np.zeros((20, 30), np.uint8)), "grey.png")
        >>> rgb.shape, size
        ((20, 30, 3), (20, 30))
    """
    try:
        header = header or image_header(buf, name)
    except DataError as err:
        cause = err.__cause__ or err
        if isinstance(cause, Image.DecompressionBombError):
            raise ImageReadError(
                f"{name} is larger than Pillow's safety limit ({cause}). If you trust the file, set "
                "PIL.Image.MAX_IMAGE_PIXELS = None before predicting."
            ) from cause
        raise ImageReadError(f"cannot read {name} as an image: {type(cause).__name__}: {cause}") from cause
    height, width = header.upright_hw
    _check_size(width, height, name)
    try:
        rgb, _ = decode_image(buf, name, min_side, header=header)
    except DataError as err:
        rgb = None if header.format == "JPEG" else _decode_with_pillow(buf)
        if rgb is None:
            raise ImageReadError(f"cannot read {name} as an image: {err}") from err
    if (rgb.shape[0] - rgb.shape[1]) * (height - width) < 0:
        # An orientation only Pillow applied (e.g. from XMP): keep the mask on the pixels decoded.
        height, width = width, height
    return rgb, (height, width)


def read_image(source: ImageInput, min_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``(RGB uint8 array, (height, width) of the upright full-size image)`` of a path, a PIL image or an array.

    Files go through :func:`read_image_bytes` (``min_side``: reduced JPEG decoding); PIL images are turned
    upright by their EXIF; arrays may be grey, RGBA, ``uint16``, bool or float in [0, 1] (see the
    :class:`~inharmony.inference.Predictor`'s inputs). An ``uint8`` RGB array comes back as it is.

    Raises:
        ImageReadError: not a readable image, too small, NaN values, an unsupported array.
        FileNotFoundError: no such file.
        TypeError: ``source`` is none of the above.

    Example:
        >>> rgb, size = read_image(np.zeros((20, 30), np.uint8))
        >>> rgb.shape, size
        ((20, 30, 3), (20, 30))
    """
    what = _name(source)
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source, what)
        return rgb, (rgb.shape[0], rgb.shape[1])
    if isinstance(source, Image.Image):
        image = ImageOps.exif_transpose(source)
        _check_size(image.width, image.height, what)
        return np.asarray(_to_rgb(image)), (image.height, image.width)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"expected a path, a PIL image or an H×W×3 uint8 array, got {type(source).__name__}"
            + ("; for tensors call the model directly" if type(source).__name__ == "Tensor" else "")
        )
    path = os.fspath(source)
    if os.path.isdir(path):
        raise ImageReadError(
            f"{path} is a folder; the Predictor takes image files, PIL images or arrays. For every image in "
            f"it: predictor(inharmony.inference.iter_image_files([{path!r}])), or `inharmony predict {path}`"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with open(path, "rb") as fh:
            buf = fh.read()
    except OSError as err:
        raise ImageReadError(f"cannot read {path} as an image: {type(err).__name__}: {err}") from err
    return read_image_bytes(buf, path, min_side)


def load_image(source: ImageInput) -> Image.Image:
    """The image as upright 8-bit RGB at full size (EXIF rotation applied, alpha dropped).

    Files are decoded as the Predictor and the data loaders decode them (:func:`decode_image`), at full size.

    Example:
        >>> load_image(np.zeros((20, 30), dtype=np.uint8)).size
        (30, 20)
    """
    return Image.fromarray(read_image(source)[0])


def load_image_array(source: ImageInput) -> np.ndarray:
    """The image as an upright RGB ``uint8`` array (H, W, 3) at full size: :func:`load_image` without the PIL copy.

    Example:
        >>> load_image_array(np.zeros((20, 30), dtype=np.uint8)).shape
        (20, 30, 3)
    """
    return read_image(source)[0]


def iter_image_files(paths: Iterable[str | os.PathLike[str]], recursive: bool = False) -> list[Path]:
    """Files named in ``paths`` plus the files inside folders in ``paths``, sorted within each folder.

    Hidden files (``.name``) inside folders are left out; a file named explicitly is always kept.

    Example:
        >>> iter_image_files(["photo.jpg"])
        [PosixPath('photo.jpg')]
    """
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.startswith("."))
        else:
            found.append(path)
    return found


# --------------------------------------------------------------------------- PNG


def _rgb_to_bgr_inplace(image: np.ndarray, rows: int = 256) -> np.ndarray:
    """Swap the channels band by band (cv2.cvtColor with dst=src still copies the whole image)."""
    for start in range(0, image.shape[0], rows):
        band = image[start : start + rows]
        band[...] = band[..., ::-1]
    return image


def encode_png(image: np.ndarray | Image.Image, *, reuse: bool = False) -> memoryview:
    """PNG bytes of a grey (H, W) or RGB (H, W, 3) ``uint8`` image, with OpenCV (fast on 12-MP masks).

    Args:
        image: The pixels (a PIL image is read as its array).
        reuse: The caller gives ``image`` up: an RGB array is turned to OpenCV's BGR in place, band by band,
            instead of into a copy (a 144-MP overlay is 432 MB); its pixels are then BGR.

    Raises:
        OSError: OpenCV could not encode it.

    Example:
        >>> bytes(encode_png(np.zeros((2, 3), np.uint8))[:4])
        b'\\x89PNG'
    """
    pixels = np.asarray(image)
    if pixels.ndim == 3:
        writable = reuse and pixels.flags.writeable
        pixels = _rgb_to_bgr_inplace(pixels) if writable else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError("OpenCV could not encode the PNG")
    return memoryview(buf)


def write_png(path: str | os.PathLike[str], image: np.ndarray | Image.Image, *, reuse: bool = False) -> None:
    """Write ``image`` (see :func:`encode_png`) to ``path`` as a PNG, atomically (never a partial file).

    Raises:
        OSError: the file cannot be written (the old file under ``path``, if any, is left as it was).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "mask.png"
        >>> write_png(path, np.zeros((20, 30), np.uint8))
        >>> image_size(path.read_bytes())
        (20, 30)
    """
    atomic_write_bytes(path, encode_png(image, reuse=reuse))
