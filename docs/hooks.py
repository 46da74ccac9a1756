"""MkDocs hooks (``hooks:`` in mkdocs.yml): what the manual generates at build time.

- ``<!-- models-table -->`` in a page becomes :func:`inharmony.models.models_markdown`, the model table measured
  from the registry (parameters and FLOPs counted on the meta device: no weights, no download, a few seconds).
- The quickstart notebook, ``notebooks/quickstart.ipynb``, is served with the site as ``quickstart.ipynb``, so
  the pages link to it (and the strict build checks the link).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

MODELS_TABLE_MARKER = "<!-- models-table -->"
REPO = Path(__file__).resolve().parents[1]
# Files outside docs/ that the site serves: path in the site -> path in the repository.
EXTRA_FILES = {"quickstart.ipynb": REPO / "notebooks" / "quickstart.ipynb"}

_table: str | None = None


def models_table() -> str:
    """The model table, rendered once per build."""
    global _table
    if _table is None:
        from inharmony.models import models_markdown

        _table = models_markdown()
    return _table


def on_files(files: Files, config: Any, **kwargs: Any) -> Files:
    for dest, source in EXTRA_FILES.items():
        files.append(File.generated(config, dest, abs_src_path=str(source)))
    return files


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MODELS_TABLE_MARKER in markdown:
        markdown = markdown.replace(MODELS_TABLE_MARKER, models_table())
    return markdown
