"""What each registered model is, measured from the registry: :func:`model_facts` and :func:`models_markdown`.

Parameters and FLOPs are counted on the ``meta`` device (shapes only: no memory, no weights, a few
hundred milliseconds for every model together), FLOPs by :class:`torch.utils.flop_counter.FlopCounterMode`
for one image at the tag's input size (a multiply-add counts as two). The docs' model table and
README's are rendered from here, so they cannot drift from the registry.

Example:
    >>> facts = {f.name: f for f in model_facts()}
    >>> round(facts["dirl"].params / 1e6, 1), round(facts["dirl"].gflops)
    (53.5, 209)
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ._builder import create_model
from ._registry import (
    PretrainedCfg,
    get_entrypoint,
    get_pretrained_cfg,
    list_models,
    list_pretrained,
    reference_scores_text,
)

__all__ = ["ModelFacts", "model_facts", "models_markdown", "takes_mask"]

_TASK_WORDS = {"localization": "finds the region", "harmonization": "fixes the region", "harmony_score": "scores"}


@dataclass(frozen=True)
class ModelFacts:
    """One registered model (its default tag), as the model table shows it.

    Attributes:
        name: Registered name.
        cfg: Its default tag's :class:`PretrainedCfg`.
        params: Number of parameters.
        gflops: GFLOPs of one forward pass at ``cfg.input_size`` (batch 1).
        takes_mask: Whether ``forward`` takes a mask besides the image.
    """

    name: str
    cfg: PretrainedCfg
    params: int
    gflops: float
    takes_mask: bool


def takes_mask(name: str) -> bool:
    """Whether model ``name``'s ``forward`` takes a mask besides the image (a harmonizer or a scorer).

    Read from the entry function's return annotation, so nothing is built.

    Example:
        >>> takes_mask("pctnet"), takes_mask("dirl")
        (True, False)
    """
    try:
        cls = typing.get_type_hints(get_entrypoint(name)).get("return")
        params = list(inspect.signature(cls.forward).parameters.values())[1:]
    except Exception:  # an entry function without a resolvable class annotation: a localizer
        return False
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) > 1


def _measure(name: str, cfg: PretrainedCfg, takes_mask: bool) -> tuple[int, float]:
    with torch.device("meta"):
        model = create_model(name).eval()
    _, height, width = cfg.input_size
    inputs = [torch.zeros(1, 3, height, width, device="meta")]
    if takes_mask:
        inputs.append(torch.zeros(1, 1, height, width, device="meta"))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9


def model_facts(pattern: str = "*") -> list[ModelFacts]:
    """:class:`ModelFacts` of every registered model matching ``pattern``, sorted by name."""
    facts = []
    for name in list_models(pattern):
        cfg = get_pretrained_cfg(name)
        mask = takes_mask(name)
        params, gflops = _measure(name, cfg, mask)
        facts.append(ModelFacts(name, cfg, params, gflops, mask))
    return facts


def _scores(cfg: PretrainedCfg) -> str:
    return reference_scores_text(cfg.metrics) or "–"


def _weights(name: str) -> str:
    published = [get_pretrained_cfg(tag) for tag in list_pretrained(f"{name}.*") or [name]]
    cells = [f"`{cfg.name}`: {cfg.hf_hub_id} ({cfg.license or 'licence not stated'})" for cfg in published
             if cfg.hf_hub_id]  # fmt: skip
    return "; ".join(cells) or "not published (train or convert your own)"


def models_markdown(pattern: str = "*") -> str:
    """The model table as Markdown: task, size, cost, input size, reference scores, published weights.

    Example:
        >>> print(models_markdown("dirl_tiny").splitlines()[2])
        | `dirl_tiny` | finds the region | 2.9 M | 11.3 | 224×224 | – | not published (train or convert your own) |
    """
    lines = [
        "| model | task | parameters | GFLOPs | input | reference scores (authors, iHarmony4) "
        "| published weights (licence) |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for fact in model_facts(pattern):
        _, height, width = fact.cfg.input_size
        lines.append(
            f"| `{fact.name}` | {_TASK_WORDS.get(fact.cfg.task, fact.cfg.task)} | {fact.params / 1e6:.1f} M "
            f"| {fact.gflops:.1f} | {height}×{width} | {_scores(fact.cfg)} | {_weights(fact.name)} |"
        )
    return "\n".join(lines)
