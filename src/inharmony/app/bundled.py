"""The example photos offered on the page: synthetic composites made from scikit-image's photos.

They ship in ``inharmony/app/examples/`` (inside the wheel). Each is a photo bundled with
scikit-image whose region (an ellipse, polygon, rectangle or blob) had its colour or lighting changed
by :func:`inharmony.data.synth.apply_appearance_change`, exactly as ``inharmony synth`` makes training
composites. :func:`make_examples` wrote them, and writes them again the same way:

    python -c "from inharmony.app.bundled import make_examples; make_examples()"

Example:
    >>> [p.name for p in example_paths()][:1]
    ['astronaut_composite.png']
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

__all__ = ["EXAMPLES_DIR", "EXAMPLE_PHOTOS", "example_paths", "make_examples"]

EXAMPLES_DIR = Path(__file__).with_name("examples")
EXAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
"""scikit-image photos used (square, two landscape, one portrait: the page keeps each aspect ratio)."""
_SIDE = 320  # longest side: small files, and the page's full pipeline runs on them in a blink


def example_paths() -> list[Path]:
    """The bundled example composites (PNG), sorted; empty if the folder is missing."""
    return sorted(EXAMPLES_DIR.glob("*_composite.png"))


def make_examples(folder: str | os.PathLike[str] = EXAMPLES_DIR, seed: int = 16) -> list[Path]:
    """Write ``<photo>_composite.png`` and its region ``<photo>_mask.png`` for each of :data:`EXAMPLE_PHOTOS`.

    Args:
        folder: Where to write (created if needed).
        seed: Random seed: the same seed gives the same regions and changes.

    Returns:
        The composites written.
    """
    from ..data.synth import apply_appearance_change, lab_stats, load_photos, random_region_mask
    from ..files import atomic_write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photos = load_photos()
    rng = np.random.default_rng(seed)
    written = []
    for i, name in enumerate(EXAMPLE_PHOTOS):
        photo = photos[name]
        scale = _SIDE / max(photo.shape[:2])
        size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
        image = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        mask = random_region_mask(rng, image.shape[0], image.shape[1], min_fg=0.08, max_fg=0.3)
        other = photos[EXAMPLE_PHOTOS[(i + 1) % len(EXAMPLE_PHOTOS)]]
        composite, _ = apply_appearance_change(rng, image, mask, reference=lab_stats(other), min_change=0.08)
        for suffix, array in (("composite", cv2.cvtColor(composite, cv2.COLOR_RGB2BGR)), ("mask", mask)):
            ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 9])
            if not ok:
                raise OSError(f"OpenCV could not encode {name}_{suffix}.png")
            atomic_write_bytes(folder / f"{name}_{suffix}.png", buf.tobytes())
        written.append(folder / f"{name}_composite.png")
    return written
