"""README and the manual (docs/, mkdocs.yml) cannot go stale: the model table, the pages, the links.

The strict MkDocs build in README's test command checks the site itself (links between pages, anchors, every
API name mkdocstrings renders); these checks are the fast part of it, and cover README too, which is not a page
of the site.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
TABLE_START, TABLE_END = "<!-- models-table:start -->", "<!-- models-table:end -->"

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def relative_links(markdown: str) -> list[str]:
    """Targets of the Markdown links outside code, without the external ones and the in-page anchors."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", markdown))
    targets = [m.group(1) for m in _LINK.finditer(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_link_reader_finds_relative_links_only():
    text = (
        '[a](use.md) and [b](api/index.md#x "t") ![img](pic.png) [web](https://x.org) [here](#top)\n'
        "`[not](code.md)`\n```\n[nor](fenced.md)\n```\n"
    )
    assert relative_links(text) == ["use.md", "api/index.md#x", "pic.png"]


def test_readme_models_table_is_the_registry_s():
    from inharmony.models import models_markdown

    text = README.read_text(encoding="utf-8")
    assert text.count(TABLE_START) == 1 and text.count(TABLE_END) == 1, f"README needs {TABLE_START} ... {TABLE_END}"
    table = text.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert table == models_markdown().strip(), (
        "README's model table differs from the registry: paste the output of `inharmony models --markdown` "
        f"between {TABLE_START} and {TABLE_END}"
    )


def test_the_models_page_is_generated_from_the_registry():
    hooks = _hooks()
    page = (DOCS / "models.md").read_text(encoding="utf-8")
    assert hooks.MODELS_TABLE_MARKER in page
    assert "| `dirl_tiny` |" in hooks.on_page_markdown(page)  # the hook puts the table in
    assert "| model | task |" not in page  # and nobody pasted a copy that would go stale


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml nav names pages that do not exist: {missing}"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == set(pages), f"pages not in the nav: {sorted(on_disk - set(pages))}"
    assert len(pages) == len(set(pages)), "a page is in the nav twice"


@pytest.mark.parametrize("path", [README, *sorted(DOCS.rglob("*.md"))], ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(path: Path):
    served = set(_hooks().EXTRA_FILES)  # files outside docs/ that the site serves (the notebook)
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file = target.split("#", 1)[0]
        if not file:
            continue
        resolved = (path.parent / file).resolve()
        if path == README:
            ok = resolved.exists() and REPO in resolved.parents
        else:  # a page may link only to what the site holds: docs/ and the served extras
            ok = (resolved.exists() and DOCS in resolved.parents) or (
                DOCS in resolved.parents and resolved.relative_to(DOCS).as_posix() in served
            )
        if not ok:
            broken.append(target)
    assert not broken, f"{path.relative_to(REPO)}: links that do not resolve: {broken}"


def test_served_extras_exist():
    for dest, source in _hooks().EXTRA_FILES.items():
        assert Path(source).is_file(), f"the site serves {dest} from {source}, which does not exist"


def test_readme_test_command_builds_the_docs_strictly():
    text = README.read_text(encoding="utf-8")
    command = text.split("<!-- ci:test-command:start -->")[1].split("<!-- ci:test-command:end -->")[0]
    assert "mkdocs build --strict" in command and "docs]" in command and "python -m pytest" in command
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^docs = \[", pyproject, re.MULTILINE), "pyproject.toml needs the docs extra"
    assert len(text.splitlines()) <= 250, "README stays short: the manual is docs/"
