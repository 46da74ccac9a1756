"""Index an iHarmony4 tree: read split lists and pair composite → mask → real image.

iHarmony4 names carry the pairing: composite ``X_<fg>_<k>.jpg`` belongs to mask ``X_<fg>.png`` and
real image ``X.jpg``. Only the basename is parsed (from the right), so names with hyphens
(Hday2night ``d1048-20120628-200951_1_1.jpg``) or two ids (HCOCO ``c21070_1396052_1.jpg``) work.

Example:
    >>> samples = build_index("/data/iHarmony4", split="test")  # doctest: +SKIP
    >>> samples[0].composite, samples[0].mask, samples[0].real  # doctest: +SKIP
    ('HCOCO/composite_images/c1_1_1.jpg', 'HCOCO/masks/c1_1.png', 'HCOCO/real_images/c1.jpg')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..constants import SUBSET_ORDER
from ..errors import DataError

__all__ = [
    "FOLDERS",
    "OFFICIAL_SUBSETS",
    "Sample",
    "build_index",
    "discover_subsets",
    "order_subsets",
    "pair_composite",
    "parse_composite_name",
    "read_list_file",
    "resolve_list_files",
]

OFFICIAL_SUBSETS = SUBSET_ORDER  # the papers' order; kept under this name for existing imports
FOLDERS = ("composite_images", "masks", "real_images")
# A list line that ends with one of these names one file, spaces included ("my photo-00098_1_1.jpg").
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One composite with its mask and real image; paths are relative to the dataset root (POSIX)."""

    composite: str
    mask: str
    real: str
    subset: str
    real_id: str  # "<subset>/<real stem>": composites sharing it come from one photo

    @property
    def name(self) -> str:
        """The composite's file name."""
        return self.composite.rsplit("/", 1)[-1]


def parse_composite_name(name: str) -> tuple[str, str, str]:
    """Split a composite file name ``X_<fg>_<k>.<ext>`` into ``(X, fg, k)``.

    Example:
        >>> parse_composite_name("d1048-20120628-200951_1_2.jpg")
        ('d1048-20120628-200951', '1', '2')
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not all(parts):
        raise DataError(
            f"cannot pair composite {name!r}: iHarmony4 composites are named "
            "'<real>_<foreground>_<k>.jpg' (e.g. 'c21070_1396052_1.jpg')"
        )
    return parts[0], parts[1], parts[2]


def pair_composite(subset: str, name: str) -> Sample:
    """The :class:`Sample` for composite ``name`` of ``subset`` (no file-system access).

    The real image gets the composite's extension; the mask is a PNG.
    """
    real, fg, _ = parse_composite_name(name)
    ext = name.rsplit(".", 1)[-1] if "." in name else "jpg"
    return Sample(
        composite=f"{subset}/composite_images/{name}",
        mask=f"{subset}/masks/{real}_{fg}.png",
        real=f"{subset}/real_images/{real}.{ext}",
        subset=subset,
        real_id=f"{subset}/{real}",
    )


def discover_subsets(root: str | os.PathLike) -> list[str]:
    """Sub-folders of ``root`` that hold a ``composite_images`` folder, official ones first."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root {str(root)!r} is not a directory: pass the folder that holds HCOCO/, ...")
    found = [p.name for p in root.iterdir() if (p / "composite_images").is_dir()]
    return order_subsets(found)


def order_subsets(names: Iterable[str]) -> list[str]:
    """Official subsets in the paper's order (HCOCO, HAdobe5k, HFlickr, Hday2night), then others sorted."""
    names = set(names)
    return [s for s in OFFICIAL_SUBSETS if s in names] + sorted(names - set(OFFICIAL_SUBSETS))


def read_list_file(path: str | os.PathLike, subset: str | None = None) -> list[tuple[str, str]]:
    """Read a split list into ``(subset, composite file name)`` pairs.

    Accepts prefixed entries (``HCOCO/composite_images/c1_1_1.jpg``, as in ``IHD_train.txt`` and DIRL's
    ``le50_train.txt``) and bare names (``c1_1_1.jpg``, as in ``HCOCO/HCOCO_train.txt``); bare names need
    ``subset`` (inferred by callers from the list's folder). Blank lines and ``#`` comments are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split list {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); a split list holds one "
            "composite path per line: re-save it as UTF-8 (or re-download it)"
        ) from err
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        if not token.lower().endswith(_IMAGE_SUFFIXES):  # a list with extra columns: the path comes first
            token = token.split()[0]
        token = token.replace("\\", "/").removeprefix("./")
        parts = [p for p in token.split("/") if p]
        if len(parts) == 1:
            if subset is None:
                raise DataError(
                    f"{path}:{lineno}: bare name {token!r} in a list outside a subset folder; "
                    "write entries as '<Subset>/composite_images/<name>' "
                    "or put the list in '<root>/<Subset>/'"
                )
            entries.append((subset, parts[0]))
        else:
            if len(parts) > 2 and parts[-2] != "composite_images":
                raise DataError(
                    f"{path}:{lineno}: entry {token!r} is not a composite image "
                    "(expected '<Subset>/composite_images/<name>')"
                )
            entries.append((parts[-3] if len(parts) > 2 else parts[0], parts[-1]))
    if not entries:
        raise DataError(f"split list {str(path)!r} has no entries")
    return entries


def resolve_list_files(root: str | os.PathLike, split: str, subsets: Sequence[str]) -> dict[str, Path]:
    """For each subset, the list that names its ``split`` composites.

    A subset's own ``<Subset>/<Subset>_<split>.txt`` wins; otherwise the root ``IHD_<split>.txt``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    root = Path(root)
    chosen = {}
    for subset in subsets:
        own = root / subset / f"{subset}_{split}.txt"
        shared = root / f"IHD_{split}.txt"
        if own.is_file():
            chosen[subset] = own
        elif shared.is_file():
            chosen[subset] = shared
        else:
            raise DataError(
                f"no {split} list for subset {subset!r}: looked for {own} and {shared}; "
                "pass list_file= to name one explicitly"
            )
    return chosen


def _check_folders(root: Path, subsets: Iterable[str]) -> None:
    for subset in subsets:
        for folder in FOLDERS:
            if not (root / subset / folder).is_dir():
                raise DataError(
                    f"missing folder {root / subset / folder}: every subset needs "
                    f"{', '.join(FOLDERS)} (is {str(root)!r} the iHarmony4 root?)"
                )


def _listing(root: Path, subset: str, folder: str, cache: dict[tuple[str, str], set[str]]) -> set[str]:
    # One directory listing per folder instead of one stat per file: 73k stats on a network disk are slow.
    key = (subset, folder)
    if key not in cache:
        with os.scandir(root / subset / folder) as it:
            cache[key] = {e.name for e in it}
    return cache[key]


def build_index(
    root: str | os.PathLike,
    split: str = "train",
    subsets: Sequence[str] | None = None,
    list_file: str | os.PathLike | None = None,
    check_files: bool = True,
) -> list[Sample]:
    """The samples of one split, in list order, every file checked to exist.

    Args:
        root: iHarmony4 root (holds ``HCOCO/``, ``HAdobe5k/``, ...).
        split: ``"train"`` or ``"test"``; ignored when ``list_file`` is given.
        subsets: keep only these subsets (default: every subset folder found, or every subset the list names).
        list_file: an explicit list (e.g. DIRL's ``le50_train.txt``); relative paths are taken from ``root``.
        check_files: verify that each composite, mask and real image exists.

    Raises:
        DataError: missing folders, list files or images; an unparsable name; an empty selection.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root {str(root)!r} is not a directory")
    entries: list[tuple[str, str]] = []
    if list_file is not None:
        list_path = Path(list_file)
        if not list_path.is_absolute() and not list_path.is_file():
            list_path = root / list_path
        parent = list_path.resolve().parent.name
        entries = read_list_file(list_path, subset=parent if (root / parent / "composite_images").is_dir() else None)
        if subsets is not None:
            entries = [e for e in entries if e[0] in set(subsets)]
        sources = {s: list_path for s, _ in entries}
    else:
        wanted = list(subsets) if subsets is not None else discover_subsets(root)
        if not wanted:
            raise DataError(f"no subset folders (with composite_images/) under {root}")
        _check_folders(root, wanted)
        sources = resolve_list_files(root, split, wanted)
        read: dict[Path, list[tuple[str, str]]] = {}
        for subset, path in sources.items():
            if path not in read:
                read[path] = read_list_file(path, subset=subset if path.parent.name == subset else None)
            entries.extend(e for e in read[path] if e[0] == subset)
    if not entries:
        raise DataError(f"no {split} entries for subsets {list(subsets or [])} under {root}")
    _check_folders(root, sorted({s for s, _ in entries}))

    samples = [pair_composite(subset, name) for subset, name in entries]
    if check_files:
        listings: dict[tuple[str, str], set[str]] = {}
        missing = []
        for sample in samples:
            for kind, rel in (
                ("composite", sample.composite),
                ("mask", sample.mask),
                ("real image", sample.real),
            ):
                subset, folder, name = rel.split("/")
                if name not in _listing(root, subset, folder, listings):
                    missing.append(f"{kind} {root / rel} (list entry {sample.composite} in {sources[subset]})")
        if missing:
            shown = "\n  ".join(missing[:5])
            raise DataError(
                f"{len(missing)} file(s) named by the split lists are missing, e.g.\n  {shown}\n"
                "check the download is complete, or pass a list_file without these entries"
            )
    return samples
