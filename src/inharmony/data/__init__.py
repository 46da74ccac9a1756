"""iHarmony4 data: index and pairing, the le50 selection, transforms, folder and streaming sources.

Example:
    >>> from inharmony.data import IHarmony4DataModule
    >>> dm = IHarmony4DataModule("/data/iHarmony4", batch_size=8, num_workers=4)  # doctest: +SKIP
    >>> dm.setup("fit"); batch = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    >>> batch["image"].shape, batch["mask"].shape, batch["subset"][:2]  # doctest: +SKIP
    (torch.Size([8, 3, 224, 224]), torch.Size([8, 1, 224, 224]), ['HCOCO', 'HFlickr'])
"""

from ..errors import DataError
from ..imageio import decode_image, reduction_factor
from .datamodule import IHarmony4DataModule
from .dataset import IHarmony4
from .decode import decode_mask, decode_pair
from .index import OFFICIAL_SUBSETS, Sample, build_index, pair_composite, parse_composite_name, read_list_file
from .le50 import ForegroundCache, filter_le50, foreground_fraction
from .splits import split_by_real_id
from .synth import synthesize
from .transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OFFICIAL_SUBSETS",
    "DataError",
    "ForegroundCache",
    "IHarmony4",
    "IHarmony4DataModule",
    "Sample",
    "build_index",
    "decode_image",
    "decode_mask",
    "decode_pair",
    "eval_transform",
    "filter_le50",
    "foreground_fraction",
    "pair_composite",
    "parse_composite_name",
    "read_list_file",
    "reduction_factor",
    "split_by_real_id",
    "synthesize",
    "train_transform",
]
