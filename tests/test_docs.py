"""The documentation: it builds in strict mode, documents every hook, and its commands run.

Conventions (also on docs/writing-plugins.md, "Document your plugin"):

- a fenced block marked ``console`` is a tested example: each line starting with ``$ `` is a
  ``neurocorr`` command that must exit 0; a page's blocks run in order in one fresh folder;
- ``<!-- docs-test: file NAME -->`` on the line before a fenced block writes the block to NAME;
- ``<!-- docs-test: needs MODULE[,MODULE] -->`` before a console block skips it, with the reason,
  when a module cannot be imported;
- ``<!-- docs-test: run -->`` (or ``run needs MODULE[,MODULE]``) before a ``python`` block runs it
  with this Python in the page's folder, in order with the console blocks: it must exit 0 (its
  asserts are the example's checks). Other python blocks are not run.
"""

from __future__ import annotations

import base64
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

import numpy as np
import pytest

from neurocorr_core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- docs-test: (file|needs|run)(?: (\S+))?(?: needs (\S+))? -->$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    file: str | None = None
    needs: tuple[str, ...] = ()
    run: bool = False


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
            elif marker and marker[1] == "run":
                block.run = True
                block.needs = tuple(marker[3].split(",")) if marker[3] else ()
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
    """The pages with tested examples: console blocks or python blocks marked to run."""
    return [p for p in pages() if any(b.lang == "console" or b.run for b in blocks(p))]


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


def test_run_markers_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: run -->\n```python\nx = 1\n```\n\n<!-- docs-test: run needs torch,jax -->\n"
                    "```python\ny = 2\n```\n\n```python\nnot run\n```\n")
    assert [(b.run, b.needs, b.body) for b in blocks(page)] == [
        (True, (), "x = 1\n"), (True, ("torch", "jax"), "y = 2\n"), (False, (), "not run\n")]


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _neurocorr() -> list[str]:
    return [sys.executable, "-m", "neurocorr_core.cli"]


def _cases():
    for page in console_pages():
        needs = {m for b in blocks(page) if b.lang == "console" or b.run for m in b.needs}
        marks = [pytest.mark.slow] if needs else []  # framework start-up takes seconds per command
        yield pytest.param(page, id=page.relative_to(DOCS).as_posix(), marks=marks)


@pytest.mark.parametrize("page", list(_cases()))
def test_console_commands_in_the_docs_run(page, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    ran, skipped = 0, []
    for block in blocks(page):
        if block.file:
            (tmp_path / block.file).write_text(block.body)
        if block.lang != "console" and not block.run:
            continue
        if missing := _missing(block.needs):
            skipped.append(f"line {block.line} needs {', '.join(missing)}")
            continue
        if block.run:
            proc = subprocess.run([sys.executable, "-c", block.body], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=600, stdin=subprocess.DEVNULL)
            assert proc.returncode == 0, f"{page.name}:{block.line}: python block\n{proc.stdout}\n{proc.stderr}"
            ran += 1
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


# -- the first hour: the index lists every command, the site's bar is one row, the tutorial's figures ---------
def test_the_index_lists_every_command_that_neurocorr_help_shows():
    from neurocorr_core import cli

    names = sorted(cls.name for cls in cli.get_plugin_manager().commands())
    help_text = cli._parser().format_help()
    assert all(f"\n    {name}" in help_text for name in names), "the help lists every command"
    index = (DOCS / "index.md").read_text()
    missing = [name for name in names if f"`neurocorr {name}`" not in index]
    assert missing == [], f"docs/index.md does not list: {', '.join(missing)}"


def _built_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    proc = mkdocs("-f", str(ROOT / "mkdocs.yml"), "-d", str(site))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return site


LAYOUT = """(() => {
  const items = [...document.querySelectorAll('.navbar .navbar-nav > li')].filter(e => e.offsetParent);
  const tops = items.map(e => Math.round(e.getBoundingClientRect().top));
  const bar = document.querySelector('.navbar');
  return {items: items.map(e => e.innerText.split('\\n')[0].trim()), tops: tops,
          bar: bar ? bar.getBoundingClientRect().height : 0,
          scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
          images: [...document.images].map(i => ({src: i.getAttribute('src'), natural: i.naturalWidth,
                                                  shown: i.getBoundingClientRect().right}))};
})()"""


@pytest.mark.slow
def test_the_tutorial_page_has_a_one_row_navigation_and_no_horizontal_scroll(tmp_path):
    from browser import CHROMIUM, Browser

    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium: apt-get install -y chromium")
    site = _built_site(tmp_path)
    page = site / "tutorial" / "index.html"
    for width in (1280, 1024):  # the mkdocs theme shows the full bar from 992 px
        browser = Browser(tmp_path / f"profile-{width}")
        try:
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            browser.send("Page.enable", session)
            browser.send("Emulation.setDeviceMetricsOverride", session, width=width, height=900,
                         deviceScaleFactor=1, mobile=False)
            browser.send("Page.navigate", session, url=page.as_uri())
            browser.wait_for("Page.loadEventFired")
            seen = browser.send("Runtime.evaluate", session, expression=LAYOUT, returnByValue=True)["result"]["value"]
            shot = browser.send("Page.captureScreenshot", session, format="png")
            (tmp_path / f"tutorial-{width}.png").write_bytes(base64.b64decode(shot["data"]))
        finally:
            browser.close()
        assert {"Home", "Tutorial", "Guide", "Plugins", "Reference"} <= set(seen["items"]), seen["items"]
        assert len(set(seen["tops"])) == 1, f"{width} px: the navigation wraps: {seen['items']} at {seen['tops']}"
        assert seen["bar"] < 80, f"{width} px: the navigation bar is {seen['bar']} px high"
        assert seen["scrollWidth"] <= seen["clientWidth"], f"{width} px: the page scrolls sideways"
        figures = [i for i in seen["images"] if "img/tutorial/" in (i["src"] or "")]
        assert len(figures) == 2 and all(i["natural"] > 300 and i["shown"] <= width for i in figures), figures


@pytest.mark.slow
def test_the_tutorial_figures_are_drawn_by_its_own_commands(tmp_path):
    """The docs build's figure step (mkdocs_hooks.page_figures), run on a copy of the tutorial:
    its commands draw the figures the page shows, pixel for pixel (within rounding)."""
    import importlib

    if _missing(("neurocorr_torch", "sklearn", "neurocorr_cka", "matplotlib")):
        pytest.skip(f"the tutorial needs {', '.join(_missing(('neurocorr_torch', 'sklearn', 'neurocorr_cka')))}")
    import matplotlib.image

    sys.path.insert(0, str(ROOT))
    try:
        hooks = importlib.import_module("mkdocs_hooks")
    finally:
        sys.path.remove(str(ROOT))
    copy = tmp_path / "tutorial.md"
    shutil.copyfile(DOCS / "tutorial.md", copy)
    drawn = hooks.page_figures(copy)
    assert [p.name for p in drawn] == ["cka-control.png", "cka-retrained.png"]
    for path in drawn:
        new, shipped = matplotlib.image.imread(path), matplotlib.image.imread(DOCS / "img" / "tutorial" / path.name)
        assert new.shape == shipped.shape, path.name
        assert np.abs(new - shipped).mean() < 0.01, f"docs/img/tutorial/{path.name} is not what the tutorial draws"


#: The measurements the README's table reports (issue 19's closing note quotes them), each with the
#: command that measured it: 2-core AMD EPYC VM, load average 0.3 (demo) and 1.5 (install).
MEASURED = {
    "neurocorr demo": {"wall": 42.3, "cpu": 45.7 + 1.4,
                       "command": '/usr/bin/time -f "wall %e s user %U s sys %S s" neurocorr demo --quiet'},
    "the main job's install": {"wall": 53.3, "cpu": 34.8 + 4.4,
                               "command": '/usr/bin/time bash -c \'python3 -m venv V && . V/bin/activate && pip '
                                          'install -q torch==2.13.0 -e . -e plugins/neurocorr-data '
                                          '-e plugins/neurocorr-pearson -e plugins/neurocorr-torch\''},
}


def readme_timings() -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of each row of the README's timing table, by the row's first words."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"\d+ s", cells[1]) and re.fullmatch(r"\d+ s", cells[2]):
            rows[cells[0]] = (float(cells[1][:-2]), float(cells[2][:-2]))
    return rows


@pytest.mark.parametrize("step", sorted(MEASURED))
def test_the_readme_timings_are_within_twice_the_measurement(step):
    rows = {name: times for name, times in readme_timings().items() if step in name}
    assert len(rows) == 1, f"README.md has no timing row for {step!r}: {sorted(readme_timings())}"
    (wall, cpu), = rows.values()
    measured = MEASURED[step]
    assert measured["wall"] / 2 <= wall <= measured["wall"] * 2, (step, wall, measured)
    assert measured["cpu"] / 2 <= cpu <= measured["cpu"] * 2, (step, cpu, measured)


def test_the_readme_starts_with_its_two_commands():
    text = (ROOT / "README.md").read_text()
    bash = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert bash[0].strip().endswith("neurocorr demo") and bash[1].strip().endswith("python -m pytest")
    assert text.index("```bash") < text.index("## ")  # before every section
