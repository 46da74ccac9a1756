"""Every parameter of every registered model, and of every row of RSRNet's Table 2, learns.

One training step (train mode, 64×64, batch 2, the registry's default loss, backward) must give every
parameter that requires a gradient a non-None, finite gradient. A parameter that gets none inflates
parameter counts, is never trained, and crashes DDP without ``find_unused_parameters``. (A gradient
may be exactly zero at initialisation: timm zero-initialises the last BatchNorm of every residual
block, which zeroes the gradient of the block's other layers until that weight moves.)
"""

from __future__ import annotations

import typing

import pytest
import torch

import inharmony
from inharmony.models import get_entrypoint, list_models
from inharmony.models.rsrnet import TABLE2_ROW_NAMES, TABLE2_ROWS, RSRNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = list_models(task="localization")  # S2AM (harmonizers): tests/test_s2am_model.py


def _builds_rsrnet(name: str) -> bool:
    """Whether the registered entry function returns an RSRNet (read from its return annotation)."""
    built = typing.get_type_hints(get_entrypoint(name)).get("return")
    return isinstance(built, type) and issubclass(built, RSRNet)


RSRNET_MODELS = [name for name in MODELS if _builds_rsrnet(name)]
# The rows differ only after the encoder, so they run on the cheapest RSRNet (ResNet18); the ResNet34
# "rsrnet" runs as registered (row 9). Rows x every RSRNet model would double this file's time.
TABLE2_MODEL = "rsrnet_resnet18"
CASES = [pytest.param(name, None, id=name) for name in MODELS] + [
    pytest.param(TABLE2_MODEL, row, id=f"{TABLE2_MODEL}-table2-row{row}") for row in TABLE2_ROWS if row != 9
]


def _target(batch: int, size: int) -> torch.Tensor:
    """A foreground square per image (different per image), covering less than half of it."""
    target = torch.zeros(batch, 1, size, size)
    for i in range(batch):
        start = 8 + 8 * i
        target[i, :, start : start + size // 3, start : start + size // 2] = 1
    return target


def test_the_rsrnet_family_is_found() -> None:
    # guards the filter above: Table 2 cases must not silently disappear
    assert {"rsrnet", TABLE2_MODEL} <= set(RSRNET_MODELS)
    assert TABLE2_ROWS[9] == {}  # row 9 is the full model, i.e. every RSRNet as registered
    assert set(TABLE2_ROWS) == set(range(1, 10)) and set(TABLE2_ROW_NAMES) == set(TABLE2_ROWS)


@pytest.mark.parametrize(("name", "row"), CASES)
def test_one_training_step_reaches_every_parameter(name: str, row: int | None, offline_loss_for_model) -> None:
    torch.manual_seed(0)
    options = {} if row is None else dict(TABLE2_ROWS[row])
    model = inharmony.create_model(name, pretrained=False, **options)
    label = name if row is None else f"{name}, Table 2 row {row} ({TABLE2_ROW_NAMES[row]}, {options})"
    if row is not None:
        assert isinstance(model, RSRNet)
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    loss = offline_loss_for_model(name)(out, _target(2, 64))["loss"]
    assert torch.isfinite(loss), label
    loss.backward()

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params, label
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"{label}: {len(missing)} of {len(params)} parameters got no gradient: {missing}"
    bad = [n for n, p in params if not torch.isfinite(p.grad).all()]
    assert not bad, f"{label}: non-finite gradients in {bad}"
