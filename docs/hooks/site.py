"""MkDocs hooks for the turnwise site (mkdocs.yml names this file).

- The API pages' `::: turnwise...` references: the repository's top-level folders are the
  subpackages of `turnwise` (setup.py maps them), a layout griffe cannot find by itself, so the
  build links them under build/docs/src/turnwise/ and mkdocstrings reads the source there.
- The recipe schema page, `reference/recipe.md`, is rendered from trainer/config.py at build time.
- Pages link to files beside docs/ (benchmarks/RESULTS.md, a learning report) with paths that
  work on a repository browser, e.g. `../benchmarks/RESULTS.md`. Such files are added to the site
  under `repo/` and the links rewritten to them; a link to a missing file is a warning, which
  `mkdocs build --strict` turns into a failure.
"""

from __future__ import annotations

import ast
import logging
import os
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCES = ROOT / "build" / "docs" / "src"  # mkdocs.yml: plugins.mkdocstrings...paths
REPO_PREFIX = "repo"
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
log = logging.getLogger("mkdocs.plugins.turnwise")

sys.path.insert(0, str(Path(__file__).parent))
from recipe_schema import render as render_recipe_schema  # noqa: E402


def package_parts() -> list[str]:
    """The top-level folders setup.py installs as `turnwise.<part>` (its PARTS list)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PARTS":
            return ast.literal_eval(node.value)
    raise RuntimeError("setup.py has no PARTS list: cannot lay out turnwise for the API pages")


@event_priority(100)  # before mkdocstrings reads its handler's paths
def on_config(config):
    """Lay out build/docs/src/turnwise/<part> -> <part>/ for mkdocstrings."""
    package = SOURCES / "turnwise"
    package.mkdir(parents=True, exist_ok=True)
    for part in package_parts():
        link = package / part
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(ROOT / part, package))
    return config


def on_files(files: Files, config) -> Files:
    """Add the recipe schema page and every repository file a page links to."""
    files.append(File.generated(config, "reference/recipe.md", content=render_recipe_schema()))
    queue = [Path(f.abs_src_path) for f in files if f.is_documentation_page() and f.abs_src_path]
    seen: set[Path] = set()
    while queue:
        page = queue.pop()
        for target in _outside_targets(page):
            if target in seen:
                continue
            seen.add(target)
            uri = f"{REPO_PREFIX}/{target.relative_to(ROOT).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(target)))
            if target.suffix == ".md":
                queue.append(target)
    return files


def _outside_targets(page: Path) -> list[Path]:
    """Existing repository files outside docs/ that the Markdown file `page` links to."""
    found = []
    for match in LINK.finditer(page.read_text()):
        target = (page.parent / match.group(2)).resolve()
        if _is_relative(match.group(2)) and not _inside(target, DOCS) and target.is_file() \
                and _inside(target, ROOT):
            found.append(target)
    return found


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    """Point links to repository files at their copies under repo/; warn about missing ones."""
    source = Path(page.file.abs_src_path) if page.file.abs_src_path else None
    if source is None:
        return markdown
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match) -> str:
        link = match.group(2)
        if not _is_relative(link):
            return match.group(0)
        target = (source.parent / link).resolve()
        if _inside(target, DOCS) and not _inside(source, DOCS):
            uri = target.relative_to(DOCS).as_posix()  # a repository page linking into docs/
        elif _inside(target, DOCS):
            return match.group(0)  # MkDocs checks links between pages itself
        elif target.is_file() and _inside(target, ROOT):
            uri = f"{REPO_PREFIX}/{target.relative_to(ROOT).as_posix()}"
        else:
            log.warning("%s links to %s, which is not a file of the repository",
                        page.file.src_uri, link)
            return match.group(0)
        new = posixpath.relpath(uri, here or ".")
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    return LINK.sub(rewrite, markdown)


def _is_relative(link: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", link) and not link.startswith("/")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
