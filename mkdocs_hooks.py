"""MkDocs hooks: every page of docs/ in the navigation, and the tutorial's figures.

Pages under ``docs/plugins/`` that ``mkdocs.yml`` does not list go, sorted, into its
``Plugins`` section; any other unlisted page goes into its ``Guide`` section (or at the end of
the navigation without one), so the top bar keeps one row. A page's title comes from its first
heading.

With ``NEUROCORR_DOCS_FIGURES=1`` the build first runs the tutorial's own commands
(:func:`page_figures`) and copies the images the page shows into ``docs/img/tutorial/``;
``python mkdocs_hooks.py`` does the same without building the site.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: Pages whose figures the build draws from their own commands.
FIGURE_PAGES = ("tutorial.md",)
_FILE = re.compile(r"^<!-- docs-test: file (\S+) -->$")
_IMAGE = re.compile(r"\]\((img/[^)]+\.(?:png|svg))\)")


def _listed(nav: Any) -> set[str]:
    """Every page path the nav names, at any depth."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_listed(v) for v in nav.values())) if nav else set()
    if isinstance(nav, list):
        return set().union(*(_listed(v) for v in nav)) if nav else set()
    return set()


def on_config(config: Any) -> Any:
    nav = config["nav"]
    if not nav:
        return config  # no nav at all: MkDocs lists every page itself
    docs = Path(config["docs_dir"])
    if os.environ.get("NEUROCORR_DOCS_FIGURES") == "1":
        for name in FIGURE_PAGES:
            page_figures(docs / name)
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    missing = [p for p in pages if p not in _listed(nav)]
    plugins = _section(nav, "Plugins")
    guide = _section(nav, "Guide")
    for page in missing:
        if page.startswith("plugins/") and plugins is not None:
            plugins["Plugins"].append(page)
        elif guide is not None:
            guide["Guide"].append(page)
        else:
            nav.append(page)
    if plugins is not None:
        plugins["Plugins"].sort()
    return config


def _section(nav: list[Any], title: str) -> dict[str, Any] | None:
    return next((entry for entry in nav if isinstance(entry, dict) and title in entry), None)


def page_figures(page: Path) -> list[Path]:
    """Run the ``console`` commands of ``page`` in a fresh folder (after writing its
    ``docs-test: file`` blocks there) and copy each image the page links (``](img/...png)``)
    from that folder, by file name, to its place under the docs folder. Returns the images."""
    text = page.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, lang, body in _blocks(text):
            if name:
                (work / name).write_text(body)
            for line in body.splitlines() if lang == "console" else []:
                if line.startswith("$ neurocorr "):
                    argv = [sys.executable, "-m", "neurocorr_core.cli", *shlex.split(line[12:])]
                    subprocess.run(argv, cwd=work, check=True, stdout=subprocess.DEVNULL)
        copied = []
        for link in dict.fromkeys(_IMAGE.findall(text)):
            target = page.parent / link
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(work / Path(link).name, target)
            copied.append(target)
    return copied


def _blocks(text: str) -> list[tuple[str | None, str, str]]:
    """(file name from a docs-test marker or None, language, body) of each fenced block."""
    found, lines, i, name = [], text.splitlines(), 0, None
    while i < len(lines):
        if match := _FILE.match(lines[i].strip()):
            name = match[1]
        elif lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            found.append((name, lang, "\n".join(lines[start:i]) + "\n"))
            name = None
        elif lines[i].strip():
            name = None
        i += 1
    return found


if __name__ == "__main__":
    for written in page_figures(Path(__file__).resolve().parent / "docs" / FIGURE_PAGES[0]):
        print(f"wrote {written}")
