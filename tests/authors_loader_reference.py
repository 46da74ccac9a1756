"""An independent re-statement of the DIRL authors' *test* loader: the tensors their published scores saw.

Read from the authors' repository (``bcmi/DIRL-Inharmonious-Region-Localization``: ``data/ihd_dataset.py``,
``data/base_dataset.py``, ``test.sh``, ``requirements.txt``), restated here step by step, sharing no code
with :mod:`inharmony`:

1. ``test.sh`` runs ``--phase test --preprocess resize --no_flip`` at the default ``--crop_size 224``, so
   the transform is one albumentations ``Resize(224, 224)`` inside their ``HCompose``, which re-declares
   the ``mask`` target as an *image*: the mask is resized like the photo, bilinearly, never nearest.
2. The composite: ``cv2.imread(path)`` (``IMREAD_COLOR``: full size, 8-bit, 3 channels, EXIF orientation
   applied), then ``cv2.cvtColor(..., COLOR_BGR2RGB)``.
3. The mask: ``cv2.imread(mask_path)`` (also ``IMREAD_COLOR``), channel 0, ``astype(float32) / 255``.
4. ``Resize``: albumentations 0.4.5 (their pinned version) calls ``cv2.resize(img, (224, 224),
   interpolation=cv2.INTER_LINEAR)`` on each target, and returns the input unchanged when it already
   has that size.
5. The composite: torchvision ``ToTensor()`` (``/ 255``, CHW, float32) then ``Normalize`` with ImageNet's
   mean ``(0.485, 0.456, 0.406)`` and std ``(0.229, 0.224, 0.225)``.
6. The mask: ``mask[np.newaxis].astype(float32)``, then ``np.where(mask > 0.5, 1, 0).astype(uint8)``.

Example:
    >>> image, mask = authors_test_item("HCOCO/composite_images/c1_1_1.jpg", "HCOCO/masks/c1_1.png")  # doctest: +SKIP
    >>> image.shape, image.dtype, mask.shape, mask.dtype  # doctest: +SKIP
    (torch.Size([3, 224, 224]), torch.float32, (1, 224, 224), dtype('uint8'))
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torchvision import transforms

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _resize(array: np.ndarray, size: int) -> np.ndarray:
    # albumentations 0.4.5 ``F.resize``: identity at the target size, else cv2.resize INTER_LINEAR.
    if array.shape[:2] == (size, size):
        return array
    return cv2.resize(array, (size, size), interpolation=cv2.INTER_LINEAR)


def authors_test_item(
    composite_path: str | os.PathLike, mask_path: str | os.PathLike, size: int = 224
) -> tuple[torch.Tensor, np.ndarray]:
    """``(comp, mask)`` as the authors' ``IhdDataset.__getitem__`` returns them in the test phase.

    Returns:
        The normalised composite ``float32 (3, size, size)`` and the mask ``uint8 (1, size, size)`` in {0, 1}.
    """
    comp = cv2.imread(os.fspath(composite_path))
    if comp is None:
        raise FileNotFoundError(composite_path)
    comp = cv2.cvtColor(comp, cv2.COLOR_BGR2RGB)
    raw_mask = cv2.imread(os.fspath(mask_path))
    if raw_mask is None:
        raise FileNotFoundError(mask_path)
    mask = raw_mask[:, :, 0].astype(np.float32) / 255.0
    comp, mask = _resize(comp, size), _resize(mask, size)
    to_input = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    image = to_input(comp)
    mask = mask[np.newaxis, ...].astype(np.float32)
    return image, np.where(mask > 0.5, 1, 0).astype(np.uint8)


def authors_test_image(composite_path: str | os.PathLike, size: int = 224) -> torch.Tensor:
    """The normalised composite alone (what the network gets), as :func:`authors_test_item` builds it."""
    comp = cv2.imread(os.fspath(composite_path))
    if comp is None:
        raise FileNotFoundError(composite_path)
    comp = _resize(cv2.cvtColor(comp, cv2.COLOR_BGR2RGB), size)
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])(comp)
