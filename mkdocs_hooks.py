"""MkDocs hook: put every page of docs/ in the navigation, so a new page never breaks the build.

Pages under ``docs/plugins/`` that ``mkdocs.yml`` does not list go, sorted, into its
``Plugins`` section; any other unlisted page is appended at the end of the navigation. A page's
title comes from its first heading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    missing = [p for p in pages if p not in _listed(nav)]
    plugins = next((entry for entry in nav if isinstance(entry, dict) and "Plugins" in entry), None)
    for page in missing:
        if page.startswith("plugins/") and plugins is not None:
            plugins["Plugins"].append(page)
        else:
            nav.append(page)
    if plugins is not None:
        plugins["Plugins"].sort()
    return config
