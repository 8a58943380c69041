"""The documentation: it builds in strict mode, documents every hook, and its commands run.

Conventions (also on docs/writing-plugins.md, "Document your plugin"):

- a fenced block marked ``console`` is a tested example: each line starting with ``$ `` is a
  ``neurocorr`` command that must exit 0; a page's blocks run in order in one fresh folder;
- ``<!-- docs-test: file NAME -->`` on the line before a fenced block writes the block to NAME;
- ``<!-- docs-test: needs MODULE[,MODULE] -->`` before a console block skips it, with the reason,
  when a module cannot be imported.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from neurocorr_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- docs-test: (file|needs) (\S+) -->$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    file: str | None = None
    needs: tuple[str, ...] = ()


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the docs-test marker right above each."""
    found, marker = [], None
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if match := MARKER.match(line.strip()):
            marker = match
        elif line.startswith("```"):
            start, lang, body = i + 1, line[3:].strip(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            block = Block(page, start, lang, "\n".join(body) + "\n")
            if marker and marker[1] == "file":
                block.file = marker[2]
            elif marker:
                block.needs = tuple(marker[2].split(","))
            found.append(block)
            marker = None
        elif line.strip():
            marker = None  # a marker belongs to the block on the very next line only
        i += 1
    return found


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def console_pages() -> list[Path]:
    return [p for p in pages() if any(b.lang == "console" for b in blocks(p))]


# -- the site builds --------------------------------------------------------------------------------
def mkdocs(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mkdocs", reason="the docs need MkDocs: pip install -e '.[dev]' (mkdocs, mkdocstrings)")
    pytest.importorskip("mkdocstrings", reason="the API reference needs mkdocstrings[python]: pip install -e '.[dev]'")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_docs_build_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    proc = mkdocs("-f", str(ROOT / "mkdocs.yml"), "-d", str(site))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    home = (site / "index.html").read_text()
    for page in pages():  # every page is built and reachable from the navigation
        rel = page.relative_to(DOCS).with_suffix("")
        url = "" if rel.name == "index" else f"{rel.as_posix()}/"
        built = site / rel.parent / ("index.html" if rel.name == "index" else f"{rel.name}/index.html")
        assert built.exists(), page
        assert f'href="{url}"' in home or f'href="./{url}"' in home or rel.name == "index", f"{url} not in nav"
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "Compare two networks by their neurons" in api  # generated from compare()'s docstring
    assert "MetricConformance" in api


@pytest.mark.slow
def test_a_new_plugin_page_lands_in_the_navigation(tmp_path):
    """The nav hook: adding docs/plugins/NAME.md needs no edit of mkdocs.yml and breaks nothing."""
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    for name in ("mkdocs.yml", "mkdocs_hooks.py"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "neurocorr_core", copy / "neurocorr_core")
    (copy / "docs" / "plugins" / "zz-brand-new.md").write_text("# neurocorr-zz-brand-new\n\nA new plugin.\n")
    proc = mkdocs("-d", str(tmp_path / "site"), cwd=copy)
    assert proc.returncode == 0, proc.stderr[-4000:]
    home = (tmp_path / "site" / "index.html").read_text()
    assert "plugins/zz-brand-new/" in home and "neurocorr-zz-brand-new" in home


# -- every hook is documented (as datasette's test_docs does) ------------------------------------------
def hook_specs() -> list[str]:
    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                  if name.startswith("neurocorr_"))


def documented_hooks() -> list[str]:
    text = (DOCS / "reference" / "hooks.md").read_text()
    return sorted(re.findall(r"^## (neurocorr_\w+)\s*$", text, re.M))


def test_there_are_hooks_to_document():
    assert len(hook_specs()) >= 3


@pytest.mark.parametrize("hook", hook_specs())
def test_every_hook_is_documented(hook):
    assert hook in documented_hooks(), f"add a '## {hook}' section to docs/reference/hooks.md"
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring in hookspecs.py"
    assert f"`{hook}()`" in (DOCS / "writing-plugins.md").read_text(), "list it in writing-plugins.md's table"


def test_no_documented_hook_is_missing_from_the_specs():
    assert set(documented_hooks()) <= set(hook_specs())


# -- the commands the docs show run --------------------------------------------------------------------
def test_the_docs_have_tested_commands():
    assert {p.name for p in console_pages()} >= {"quickstart.md", "cli.md", "config.md"}


def test_markers_are_read():
    page = DOCS / "quickstart.md"
    kinds = [(b.lang, b.file, b.needs) for b in blocks(page) if b.file or b.needs]
    assert ("python", "models.py", ()) in kinds and ("toml", "experiment.toml", ()) in kinds
    assert ("console", None, ("neurocorr_torch",)) in kinds


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _neurocorr() -> list[str]:
    return [sys.executable, "-m", "neurocorr_core.cli"]


def _cases():
    for page in console_pages():
        needs = {m for b in blocks(page) if b.lang == "console" for m in b.needs}
        marks = [pytest.mark.slow] if needs else []  # framework start-up takes seconds per command
        yield pytest.param(page, id=page.relative_to(DOCS).as_posix(), marks=marks)


@pytest.mark.parametrize("page", list(_cases()))
def test_console_commands_in_the_docs_run(page, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    ran, skipped = 0, []
    for block in blocks(page):
        if block.file:
            (tmp_path / block.file).write_text(block.body)
        if block.lang != "console":
            continue
        if missing := _missing(block.needs):
            skipped.append(f"line {block.line} needs {', '.join(missing)}")
            continue
        for command in [ln[2:] for ln in block.body.splitlines() if ln.startswith("$ ")]:
            argv = shlex.split(command)
            assert argv[0] == "neurocorr", (f"{page.name}:{block.line}: console blocks run neurocorr "
                                            f"commands only; mark other commands as bash: {command}")
            proc = subprocess.run(_neurocorr() + argv[1:], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=600, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, f"{page.name}:{block.line}: $ {command}\n{proc.stdout}\n{proc.stderr}"
            ran += 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".check"))]
    assert leftovers == [], "atomic writes leave no temporary files"
    if not ran:
        pytest.skip("; ".join(skipped))
