"""How an image becomes the network's input at evaluation: one definition for ``predict`` and ``test``.

:class:`EvalPreprocess` is used by :class:`~inharmony.inference.Predictor` (hence ``inharmony predict``)
and by the val/test/predict loaders of :class:`~inharmony.data.IHarmony4DataModule` (hence
``inharmony validate`` and ``inharmony test``), so the mask ``predict`` writes is the mask ``test`` scores.
By default (:data:`EVAL_PIXELS` = :data:`OFFICIAL_PIXELS`) the tensors are the DIRL authors' test loader's,
so scores are comparable with the papers' tables. From the file's bytes to the normalised tensor:

1. :meth:`EvalPreprocess.decode`: OpenCV decodes to RGB ``uint8`` at full size, EXIF orientation applied
   (as ``cv2.imread`` does; :func:`decode_image` applies it itself, so a mask can be turned the same way);
   a JPEG that libjpeg reports as corrupt is refused. With :attr:`EvalPixels.reduced_decoding` (the
   :data:`FAST_PIXELS` option) a large JPEG is decoded at 1/2, 1/4 or 1/8 scale instead;
2. :meth:`EvalPreprocess.__call__`: albumentations ``Resize`` to the network size, cv2 ``INTER_LINEAR``
   (``INTER_AREA`` when shrinking if :attr:`EvalPixels.area_for_downscale`), then :class:`Normalize`
   (the model's mean/std, ImageNet by default) to ``float32 (3, H, W)``. A ground-truth mask (float in
   [0, 1]) is resized with the image, bilinearly as an image, and binarised by :meth:`EvalPixels.binarize`
   (``> 0.5`` officially).

Every pixel choice (decoder reduction, interpolation, mask threshold) is a field of :class:`EvalPixels`;
:data:`PIXEL_PRESETS` names the two sets (``"official"``, ``"fast"``) and :func:`eval_pixels` looks one up.

Example:
    >>> prep = EvalPreprocess(224)
    >>> x, _ = prep(np.zeros((457, 613, 3), np.uint8))
    >>> tuple(x.shape), x.dtype, prep.pixels is OFFICIAL_PIXELS
    ((3, 224, 224), torch.float32, True)
"""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import DataError

__all__ = [
    "EVAL_PIXELS",
    "FAST_PIXELS",
    "OFFICIAL_PIXELS",
    "PIXEL_PRESETS",
    "EvalPixels",
    "EvalPreprocess",
    "ImageHeader",
    "Normalize",
    "apply_orientation",
    "decode_checked",
    "decode_image",
    "eval_pixels",
    "image_header",
    "image_size",
    "reduction_factor",
    "size_hw",
]


# --------------------------------------------------------------------------- the pixel choices


@dataclass(frozen=True)
class EvalPixels:
    """The choices that decide which pixels the network sees at evaluation, and which mask is scored.

    Attributes:
        reduced_decoding: Decode a JPEG at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when its shorter
            side stays at least the network's longer side; fast on 6000-px photos, but not the pixels of a
            full-size decode.
        area_for_downscale: Resize with cv2 ``INTER_AREA`` when shrinking (image and mask), else
            ``INTER_LINEAR`` always (enlarging is always ``INTER_LINEAR``).
        mask_threshold: A resized mask (float in [0, 1]) is foreground where it passes this value.
        mask_inclusive: Foreground is ``mask >= mask_threshold`` if True, ``mask > mask_threshold`` if False.

    Example:
        >>> mask = np.array([0.25, 0.5, 0.75], np.float32)
        >>> OFFICIAL_PIXELS.binarize(mask).tolist(), FAST_PIXELS.binarize(mask).tolist()
        ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    """

    reduced_decoding: bool
    area_for_downscale: bool
    mask_threshold: float
    mask_inclusive: bool

    def binarize(self, mask: np.ndarray) -> np.ndarray:
        """``float32`` mask in {0, 1}: the resized ground truth as it is scored."""
        above = mask >= self.mask_threshold if self.mask_inclusive else mask > self.mask_threshold
        return above.astype(np.float32)


#: The DIRL authors' test loader (``data/ihd_dataset.py`` with ``--preprocess resize``): full-size decode,
#: ``INTER_LINEAR`` resize of the image and of the float mask, mask > 0.5. Scores comparable with the papers.
OFFICIAL_PIXELS = EvalPixels(reduced_decoding=False, area_for_downscale=False, mask_threshold=0.5, mask_inclusive=False)

#: The speed option: reduced JPEG decoding, area resampling when shrinking, mask >= 0.5 (the data path's
#: default before 0.2). Several times faster on HAdobe5k's 6000-px photos, but not the authors' pixels:
#: scores differ slightly from the official ones (``inharmony bench eval_pixels`` measures by how much).
FAST_PIXELS = EvalPixels(reduced_decoding=True, area_for_downscale=True, mask_threshold=0.5, mask_inclusive=True)

#: The named pixel sets, as configs and the command line spell them.
PIXEL_PRESETS: dict[str, EvalPixels] = {"official": OFFICIAL_PIXELS, "fast": FAST_PIXELS}

#: The pixels :class:`~inharmony.inference.Predictor` and the eval loaders use unless given others.
EVAL_PIXELS = OFFICIAL_PIXELS


def eval_pixels(name: str) -> EvalPixels:
    """The pixel set named ``name`` in :data:`PIXEL_PRESETS`.

    Raises:
        ValueError: if ``name`` is not one of them.

    Example:
        >>> eval_pixels("fast") is FAST_PIXELS
        True
    """
    try:
        return PIXEL_PRESETS[name]
    except (KeyError, TypeError):
        choices = ", ".join(repr(k) for k in PIXEL_PRESETS)
        raise ValueError(f"unknown evaluation pixels {name!r}; choose one of {choices}") from None


# --------------------------------------------------------------------------- decoding

_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}  # fmt: skip
_ORIENTATION_TAG = 0x0112


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
        DataError: if the header is not a readable image's.

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


def _jpeg_complete(buf: bytes | memoryview) -> bool:
    """Whether the JPEG's last scan is followed by an end-of-image marker (truncated files lack it)."""
    if b"\xff\xd9" in bytes(buf[-1024:]):
        return True
    # Data appended after the image (camera trailers) can push the marker out of the tail.
    data = bytes(buf)
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0


def _is_jpeg(buf: bytes | memoryview) -> bool:
    return bytes(buf[:3]) == b"\xff\xd8\xff"


# libjpeg's warnings (JWRN_*) that mean the entropy-coded data is damaged: the decoder goes on and fills
# the picture with garbage or grey. Format and version warnings (unknown JFIF revision, Adobe transform) are
# not in this list.
_JPEG_CORRUPTION = re.compile(
    rb"(Corrupt JPEG data[^\n]*|Premature end of JPEG file|Inconsistent progression sequence[^\n]*"
    rb"|Invalid SOS parameters for sequential JPEG)\n?"
)


class _StderrCapture:
    """Collects what C code writes to file descriptor 2 while it runs (one capture at a time per process).

    libjpeg reports damaged data as *warnings*, which OpenCV does not surface: they reach only C
    ``stderr`` (libjpeg's default message handler). The capture points descriptor 2 at a private
    temporary file for the decode, then restores it; the caller writes back what it does not turn into
    an error, so no output is lost (only delayed). Costs a few system calls, not a second decode. A lock
    serialises captures, because descriptor 2 belongs to the whole process. Where descriptor 2 cannot be redirected (no
    stderr, or a C runtime with its own, as on Windows) nothing is captured and corruption goes unseen.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):  # a forked DataLoader worker gets its own lock and file
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._file: io.BufferedRandom | None = None

    def run(self, fn: Callable[[], np.ndarray | None]) -> tuple[np.ndarray | None, bytes]:
        """``(fn(), bytes written to descriptor 2 during the call)``."""
        with self._lock:
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the process's life)
                sink = self._file.fileno()
                os.ftruncate(sink, 0)
                os.lseek(sink, 0, os.SEEK_SET)  # fd 2 will share this offset
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):
                return fn(), b""
            try:
                os.dup2(sink, 2)
                try:
                    result = fn()
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
            os.lseek(sink, 0, os.SEEK_SET)
            captured = b""
            while chunk := os.read(sink, 1 << 16):
                captured += chunk
        return result, captured


_STDERR = _StderrCapture()


def _imdecode(buf: bytes, flags: int, name: str, jpeg: bool) -> np.ndarray | None:
    """``cv2.imdecode``; for a JPEG, refuses data that libjpeg reports as corrupt."""
    array = np.frombuffer(buf, np.uint8)
    if not jpeg:
        return cv2.imdecode(array, flags)
    image, messages = _STDERR.run(lambda: cv2.imdecode(array, flags))
    found = _JPEG_CORRUPTION.search(messages)
    others = _JPEG_CORRUPTION.sub(b"", messages).strip()
    if others:  # anything else written meanwhile (another thread's output, other warnings): shown as it was
        os.write(2, others + b"\n")
    if found:
        raise DataError(
            f"{name}: corrupt JPEG (libjpeg: {found.group(1).decode(errors='replace')}): its pixels would decode "
            "as garbage; re-download (or re-export) the file"
        )
    return image


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
    jpeg = _is_jpeg(buf)
    factor = reduction_factor(*full, min_side) if jpeg else 1
    if jpeg and not _jpeg_complete(buf):
        # OpenCV decodes a truncated JPEG without error (grey bottom rows): refuse it.
        raise DataError(f"{name}: truncated JPEG (no end-of-image marker); re-download the file")
    image = _imdecode(buf, _REDUCED_COLOR[factor] | cv2.IMREAD_IGNORE_ORIENTATION, name, jpeg)
    if image is None:
        raise DataError(f"{name}: OpenCV cannot decode this image (corrupt or truncated?)")
    return apply_orientation(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), header.orientation), full


def decode_checked(buf: bytes, flags: int, name: str = "<bytes>") -> np.ndarray | None:
    """``cv2.imdecode(buf, flags)``, refusing a JPEG that libjpeg reports as corrupt (for masks).

    Raises:
        DataError: for a corrupt JPEG.

    Example:
        >>> decode_checked(cv2.imencode(".png", np.zeros((2, 3), np.uint8))[1].tobytes(), cv2.IMREAD_UNCHANGED).shape
        (2, 3)
    """
    return _imdecode(buf, flags, name, _is_jpeg(buf))


# --------------------------------------------------------------------------- normalisation


class Normalize:
    """``uint8`` RGB (H, W, 3) → ``float32`` tensor (3, H, W) of ``(x / 255 - mean) / std``.

    The one normalisation step of the train and eval transforms and of the Predictor.

    Example:
        >>> Normalize()(np.zeros((4, 4, 3), np.uint8))[:, 0, 0]
        tensor([-2.1179, -2.0357, -1.8044])
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._normalize = A.Normalize(mean=self.mean, std=self.std, max_pixel_value=255.0)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        out = self._normalize(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


# --------------------------------------------------------------------------- the definition


def size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of a size given as an int (square) or a pair.

    Example:
        >>> size_hw(224), size_hw((160, 288))
        ((224, 224), (160, 288))
    """
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


class EvalPreprocess:
    """Bytes or an RGB array → the network's input; with a mask, the pair as evaluation scores it.

    Args:
        size: Network input size, an int or ``(height, width)``.
        mean: Normalisation mean (RGB, 0–1 scale); the model's ``pretrained_cfg.mean``.
        std: Normalisation std; the model's ``pretrained_cfg.std``.
        pixels: The pixel choices (default :data:`EVAL_PIXELS`, the authors'); :func:`eval_pixels` names them.

    Attributes:
        min_source_side: The shorter side a decoded image must keep (reduced JPEG decoding stops
            there), or None to decode at full size. Datasets read it, as for the train transform.

    Example:
        >>> prep = EvalPreprocess(32)
        >>> buf = cv2.imencode(".jpg", np.zeros((457, 613, 3), np.uint8))[1].tobytes()
        >>> rgb, full = prep.decode(buf)
        >>> rgb.shape, full  # the official pixels: always full size
        ((457, 613, 3), (457, 613))
        >>> EvalPreprocess(32, pixels=FAST_PIXELS).decode(buf)[0].shape  # 1/8 scale keeps the shorter side ≥ 32
        (58, 77, 3)
        >>> image, mask = prep(rgb, np.ones((457, 613), np.float32))
        >>> tuple(image.shape), tuple(mask.shape)
        ((3, 32, 32), (1, 32, 32))
    """

    def __init__(
        self,
        size: int | Sequence[int] = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        pixels: EvalPixels | None = None,
    ) -> None:
        self.size = size_hw(size)
        self.pixels = pixels = pixels or EVAL_PIXELS
        height, width = self.size
        self.min_source_side = max(height, width) if pixels.reduced_decoding else None
        self.pipeline = A.Compose(
            [
                A.Resize(
                    height=height,
                    width=width,
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_LINEAR,
                    area_for_downscale="image_mask" if pixels.area_for_downscale else None,
                )
            ]
        )
        self.normalize = Normalize(mean, std)

    def decode(self, buf: bytes, name: str = "<bytes>") -> tuple[np.ndarray, tuple[int, int]]:
        """RGB ``uint8`` image and the file's stored ``(height, width)``; see :func:`decode_image`."""
        return decode_image(buf, name, self.min_source_side)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Resize and normalise an RGB ``uint8`` image (and its float mask in [0, 1], if given).

        Returns:
            Image ``float32 (3, H, W)`` and mask ``float32 (1, H, W)`` in {0, 1} (None without a mask).
        """
        if mask is None:
            return self.normalize(self.pipeline(image=image)["image"]), None
        out = self.pipeline(image=image, mask=mask.astype(np.float32, copy=False))
        return self.normalize(out["image"]), torch.from_numpy(self.pixels.binarize(out["mask"])[None])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, pixels={self.pixels}, normalize={self.normalize})"
