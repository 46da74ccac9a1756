"""Typed functions behind the tool commands that have no library function of their own.

Each signature and Google docstring is the one declaration of the command's options (the parser is
built from it, see :mod:`inharmony.cli.tools`); each returns the exit code. The ``report_*``
functions print the outcome of a library function (``synthesize``, ``resize_tree``, ...) that a
command runs directly. Heavy imports stay inside the functions so ``inharmony --help`` stays fast.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from .exit_codes import EXIT_OK, EXIT_PARTIAL, error
from .tools import Tool, doc_example

__all__ = ["bench_tools", "convert_tools", "export", "models", "push"]


def models(pattern: str = "*", markdown: bool = False) -> int:
    """List registered models, their weight tags and whether the weights are published.

    Args:
        pattern: Shell-style filter on model names.
        markdown: Print the model table (task, parameters, GFLOPs, input size, reference scores,
            published weights and licence) as Markdown, as the docs and README show it.

    Example:
        inharmony models --pattern 'dirl*'
    """
    from ..models import get_pretrained_cfg, list_models, list_pretrained, models_markdown

    names = list_models(pattern)
    if not names:
        print(f"no model matches {pattern!r}")
        return EXIT_PARTIAL
    if markdown:
        print(models_markdown(pattern))
        return EXIT_OK
    for name in names:
        default = get_pretrained_cfg(name)
        print(f"{name}  ({default.paper_url or 'no paper link'})")
        for tagged in list_pretrained(f"{name}.*") or [name]:
            cfg = get_pretrained_cfg(tagged)
            revision = cfg.revision or "newest (the commit is recorded when downloaded)"
            where = f"{cfg.hf_hub_id}@{revision}" if cfg.hf_hub_id else "weights not published yet"
            scores = ", ".join(f"{k}={v}" for k, v in cfg.metrics.items())
            print(f"  {cfg.name:<28} {where}" + (f"  reference: {scores}" if scores else ""))
    return EXIT_OK


_MAX_SIDE = 4096  # the largest --size / --check-sizes side: a 4096² float image is 200 MB
_OPSETS = range(7, 24)  # the ONNX opsets torch.onnx writes
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", re.ASCII)


def _sizes(text: str, multiple: int) -> list[tuple[int, int]]:
    """``--check-sizes`` as ``[(height, width), ...]``; ``ValueError`` naming the option for a bad item."""
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        height, _, width = item.lower().partition("x")
        sides = (height.strip(), (width or height).strip())
        if not all(side.isdecimal() and side.isascii() and len(side) <= 5 for side in sides):
            raise ValueError(f"--check-sizes: {item[:40]!r} is not HxW (e.g. 224x224,160x288)")
        pair = (int(sides[0]), int(sides[1]))
        if not all(1 <= side <= _MAX_SIDE and side % multiple == 0 for side in pair):
            raise ValueError(
                f"--check-sizes: {item!r}: each side must be a multiple of {multiple} (the model's size multiple) "
                f"from {multiple} to {_MAX_SIDE}"
            )
        sizes.append(pair)
    return sizes


def export(
    out: str,
    model: str = "dirl",
    weights: str | None = None,
    random_weights: bool = False,
    format: Literal["onnx"] = "onnx",
    size: int = 224,
    opset: int = 18,
    check_sizes: str = "224x224,160x288",
    atol: float = 1e-4,
    overwrite: bool = False,
) -> int:
    """Export a model to ONNX (dynamic batch, height, width) and check it against PyTorch with ONNX Runtime.

    The file is written atomically. An existing ``--out`` is replaced only if an earlier ``inharmony export``
    wrote it (or with ``--overwrite``); the ``--weights`` file itself is never replaced.

    Args:
        out: Output file, e.g. ``dirl.onnx``.
        model: Registered model name.
        weights: Hub folder, Hub id, state dict or ``.ckpt``; default: the published weights.
        random_weights: Export an untrained model (for tests).
        format: Export format.
        size: Example input size for tracing.
        opset: ONNX opset.
        check_sizes: ``HxW`` sizes compared against eager PyTorch after export (``''`` to skip).
        atol: Largest allowed difference from eager PyTorch.
        overwrite: Replace an existing ``--out`` that is not an earlier export (never the ``--weights``).
    """
    from ..inference.export import check_onnx, export_onnx
    from ..models import get_pretrained_cfg

    if not out.strip():
        return error("--out is empty; give the .onnx file to write")
    target = Path(out).resolve()
    if weights and (target == Path(weights).resolve() or Path(weights).resolve() in target.parents):
        where = "is the --weights file" if target == Path(weights).resolve() else "is inside the --weights folder"
        return error(f"--out {out} {where} ({weights}); it is never replaced: choose another name for the graph")
    multiple = get_pretrained_cfg(model).size_multiple
    if not (multiple <= size <= _MAX_SIDE and size % multiple == 0):
        return error(f"--size {size}: must be a multiple of {multiple} ({model}'s size multiple) up to {_MAX_SIDE}")
    if opset not in _OPSETS:
        return error(f"--opset {opset}: must be an ONNX opset from {_OPSETS.start} to {_OPSETS.stop - 1}")
    if not (math.isfinite(atol) and atol > 0):
        return error(f"--atol {atol}: must be a positive number")
    sizes = _sizes(check_sizes, multiple)
    if random_weights:
        if weights:
            return error("give --weights or --random-weights, not both")
        from ..models import create_model

        network = create_model(model).eval()
    else:
        from ..models import load

        network = load(model, weights=weights)
    path = export_onnx(network, out, size=size, opset=opset, overwrite=overwrite)
    if sizes:
        try:
            report = check_onnx(network, path, sizes=sizes, atol=atol)
        except AssertionError as err:
            error(str(err))
            return EXIT_PARTIAL
        for (height, width), diff in report.items():
            print(f"checked {height}x{width}: max |onnx - eager| = {diff:.2e}")
    print(f"wrote {path}")
    return EXIT_OK


def push(
    checkpoint: str,
    *,
    repo_id: str,
    metrics: str | None = None,
    training_data: str | None = None,
    private: bool = False,
    branch: str | None = None,
    commit_message: str = "Upload inharmony model",
    out: str | None = None,
    dry_run: bool = False,
    trust_checkpoint: bool = False,
    force: bool = False,
) -> int:
    """Upload a Lightning checkpoint (or hub folder) to the Hugging Face Hub, with config and model card.

    Args:
        checkpoint: A ``.ckpt`` written by ``inharmony fit``, or a hub folder (config.json + model.safetensors).
        repo_id: Hub repository, ``org/name`` (created if needed).
        metrics: ``metrics.json`` (e.g. from ``inharmony test``) for the model card.
        training_data: One line on the training data, for the card.
        private: Create the repository as private.
        branch: Branch to push to (default: main).
        commit_message: Commit message of the upload.
        out: Also keep the hub folder here.
        dry_run: Write the folder (``--out``) and do not upload.
        trust_checkpoint: Allow pickled Python objects in the ``.ckpt`` (only for files you made).
        force: Write into a non-empty ``--out`` folder (its config.json, model.safetensors and README.md
            are replaced).
    """
    from ..files import check_output_folder
    from ..models import CONFIG_NAME, from_pretrained, save_pretrained
    from ..models.converters.lightning import load_lightning_checkpoint
    from ..models.model_card import read_metrics_file

    if dry_run and not out:
        return error("--dry-run needs --out DIR (where to write the folder)")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id or repo_id.endswith((".", "-")):
        return error(f"--repo-id {repo_id[:100]!r}: must be a Hugging Face repository id 'org/name' (letters, digits, "
                     "'-', '_', '.'; at most 96 characters each)")  # fmt: skip
    if branch is not None and (not re.fullmatch(r"[\w./-]{1,200}", branch, re.ASCII) or ".." in branch):
        return error(f"--branch {str(branch)[:100]!r}: must be a branch name (letters, digits, '-', '_', '.', '/')")
    if not commit_message.strip():
        return error("--commit-message is empty")
    if out is not None:
        check_output_folder(out, force)
    card_metrics = read_metrics_file(metrics) if metrics else None
    if Path(checkpoint).is_dir():
        model = from_pretrained(checkpoint)
        config = json.loads((Path(checkpoint) / CONFIG_NAME).read_text(encoding="utf-8"))
        hparams = {"model": config["architecture"], "model_kwargs": config.get("model_args", {})}
    else:
        model, hparams = load_lightning_checkpoint(checkpoint, trust=trust_checkpoint)
    card = {"repo_id": repo_id, **({"training_data": training_data} if training_data else {})}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out) if out else Path(tmp) / "model"
        save_pretrained(
            model,
            folder,
            model_name=hparams["model"],
            model_kwargs=dict(hparams.get("model_kwargs") or {}),
            metrics=card_metrics,
            model_card_kwargs=card,
            push_to_hub=not dry_run,
            repo_id=repo_id,
            private=private or None,
            branch=branch,
            commit_message=commit_message,
        )
    if dry_run:
        print(f"wrote {folder} (not uploaded: --dry-run); upload with `hf upload {repo_id} {folder}`")
    else:
        print(f"uploaded to https://huggingface.co/{repo_id}" + (f" (folder kept in {folder})" if out else ""))
    return EXIT_OK


# --------------------------------------------------------------------------- reports of library functions


def report_synth(summary: dict[str, Any], **_: Any) -> int:
    held = ", ".join(summary["test_photos"]) or "none (split by real image)"
    print(
        f"wrote {summary['train']} train + {summary['test']} test composites to "
        f"{summary['root']}/{summary['subset']} (test-only photos: {held})"
    )
    return EXIT_OK


def report_resize(written: int, *, out: str, max_side: int, **_: Any) -> int:
    print(f"wrote {written} files to {out} (longest side ≤ {max_side}px)")
    return EXIT_OK


def report_optimize(counts: dict[str, int], *, out: str, **_: Any) -> int:
    print(f"wrote litdata chunks to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return EXIT_OK


def report_check(report: Any, **_: Any) -> int:
    """Print :func:`~inharmony.data.check.check_tree`'s findings; 1 when bad files were found or the
    derived split differs from ``--compare-list``."""
    flagged = 0
    shown = 5
    for split in report:
        print(f"{split.split}: {split.total} composites, {split.total_le50} with foreground ≤ 50 % (le50)")
        for subset, (count, le50) in split.counts.items():
            print(f"  {subset:<12} {count:>7}  le50 {le50:>7}")
        if split.bad is not None:
            for message in split.bad:
                print(f"  BAD: {message}")
            print(f"  {len(split.bad)} bad sample(s) in {split.split}")
            flagged += len(split.bad)
        if getattr(split, "binary_masks", None):
            print(f"  {split.binary_masks} mask(s) stored as 0/1 instead of 0/255 (0/1 masks, scaled: read as 0/255)")
        cmp = getattr(split, "comparison", None)
        if cmp is None:
            continue
        print(f"compare le50 {split.split} (derived) with {cmp.list_file}:")
        print(f"  {'subset':<12} {'derived':>8} {'published':>10}")
        for subset, (mine, theirs) in cmp.counts.items():
            print(f"  {subset:<12} {mine:>8} {theirs:>10}")
        total = [sum(c[i] for c in cmp.counts.values()) for i in (0, 1)]
        print(f"  {'all':<12} {total[0]:>8} {total[1]:>10}")
        if cmp.same:
            print("  same composites on both sides")
            continue
        flagged += 1
        for names, where in ((cmp.only_derived, "only in the derived split"), (cmp.only_published, "only in the list")):
            if names:
                more = f" (first {shown})" if len(names) > shown else ""
                print(f"  {len(names)} {where}{more}: {', '.join(names[:shown])}")
    return EXIT_PARTIAL if flagged else EXIT_OK


# --------------------------------------------------------------------------- convert


def convert_tools() -> dict[str, Tool]:
    """One ``inharmony convert`` tool per registered converter that has a command, named after the converter.

    Example:
        >>> {"dirl-official", "madisnet-libcom", "s2am-official"} <= set(convert_tools())
        True
    """
    from ..models.converters import list_converters

    commands = {c.name: c.command for c in sorted(list_converters(), key=lambda c: c.name) if c.command is not None}
    return {name: Tool(cmd.target, cmd.summary, cmd.example) for name, cmd in commands.items()}


# --------------------------------------------------------------------------- benchmarks


def bench_tools() -> dict[str, Tool]:
    """One tool per measuring mode (its typed ``run``), plus ``all`` (every mode) and ``report`` (the docs' tables)."""
    from ..benchmarks import bench_modes, readme

    found = {name: Tool(f"{mod.__name__}:run", mod.HELP, doc_example(mod.run)) for name, mod in bench_modes().items()}
    found["all"] = Tool(
        f"{readme.__name__}:run_all",
        "Run every bench mode with a preset (full, quick, smoke), writing OUT/MODE.json for 'bench report'.",
        doc_example(readme.run_all),
    )
    found["report"] = Tool(
        f"{readme.__name__}:report",
        "Render bench JSON reports as Markdown tables; replace this machine's section of docs/benchmarks.md.",
        doc_example(readme.report),
    )
    return found
