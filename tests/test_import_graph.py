"""The import graph of the core and of every plugin package, read from the source (nothing is imported).

Three rules hold across the project: the modules of one package never import each other in a circle (also
not inside functions: a circle hidden in a function still couples both modules), the core never imports a
plugin package, and no module imports another module's private (underscore) name.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "neurocorr_core"


@dataclass(frozen=True)
class Import:
    """One import statement's target, as written and as resolved."""

    source: str  # the importing module, dotted
    path: Path  # its file
    line: int
    statement: str  # the statement as written, for messages
    target: str  # the module it binds to: a submodule when `from pkg import sub` names one
    name: str | None  # the name taken from the target (None for `import x` and submodules)

    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{self.source} ({shown}:{self.line}) `{self.statement}`"


def package_dirs() -> list[Path]:
    """The core and each plugin or example package: a folder with __init__.py beside a pyproject.toml."""
    found = [ROOT / CORE]
    for dist in sorted([*ROOT.glob("plugins/*"), *ROOT.glob("examples/*")]):
        if (dist / "pyproject.toml").is_file():
            found += sorted(p.parent for p in dist.glob("*/__init__.py") if p.parent.name != "tests")
    return found


def module_name(path: Path, package: Path) -> str:
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules_of(package: Path) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py")) if "__pycache__" not in p.parts}


def resolve_base(source: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` reads from, relative dots resolved against `source`."""
    if not node.level:
        return node.module or ""
    # A package's __init__ is its own base; a plain module's base is its package.
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(source: str, path: Path, known: set[str]) -> list[Import]:
    """Every import in the file, at module level and inside functions and classes alike."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        statement = ast.unparse(node) if isinstance(node, ast.Import | ast.ImportFrom) else ""
        if isinstance(node, ast.Import):
            found += [Import(source, path, node.lineno, statement, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve_base(source, path, node)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in known:
                    found.append(Import(source, path, node.lineno, statement, submodule, None))
                else:
                    found.append(Import(source, path, node.lineno, statement, base, alias.name))
    return found


def project_graph(dirs: list[Path] | None = None) -> tuple[dict[str, dict[str, Path]], list[Import]]:
    """The modules of each package (by package name) and every import they make."""
    packages = {package.name: modules_of(package) for package in (package_dirs() if dirs is None else dirs)}
    known = {name for modules in packages.values() for name in modules}
    imports = [
        imp
        for modules in packages.values()
        for source, path in modules.items()
        for imp in imports_of(source, path, known)
    ]
    return packages, imports


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path per strongly connected group of modules (Tarjan), each path closed on its first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [cycle_through(group, graph) for group in sorted(groups)]


def cycle_through(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle from the group's first module back to itself, staying inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph.get(node, set()) & members):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")  # Tarjan grouped them: unreachable


def circles(packages: dict[str, dict[str, Path]], imports: list[Import]) -> list[str]:
    """Each circle among the modules of one package, as its path and the imports that close it."""
    problems = []
    for package, modules in packages.items():
        graph: dict[str, set[str]] = {name: set() for name in modules}
        by_edge: dict[tuple[str, str], Import] = {}
        for imp in imports:
            if imp.source in modules and imp.target in modules and imp.target != imp.source:
                graph[imp.source].add(imp.target)
                by_edge.setdefault((imp.source, imp.target), imp)
        for cycle in find_cycles(graph):
            steps = "; ".join(by_edge[a, b].where() for a, b in itertools.pairwise(cycle))
            problems.append(f"{package}: circle {' -> '.join(cycle)}: {steps}")
    return problems


def plugin_imports(core: str, imports: list[Import]) -> list[str]:
    """Imports of another ``neurocorr_*`` package by a module of ``core``."""
    return [
        imp.where()
        for imp in imports
        if imp.source.split(".")[0] == core
        and imp.target.split(".")[0].startswith("neurocorr_")
        and imp.target.split(".")[0] != core
    ]


def private_imports(packages: dict[str, dict[str, Path]], imports: list[Import]) -> list[str]:
    """Imports of a project module's private name by another module, and of a private module
    (``_impl``) from outside the package that holds it."""
    project = {name.split(".")[0] for name in packages}
    problems = []
    for imp in imports:
        if imp.target.split(".")[0] not in project:
            continue  # another library's private names are its own business
        if imp.name is not None and is_private(imp.name) and imp.target != imp.source:
            problems.append(f"{imp.where()} takes the private name {imp.name!r} from {imp.target}")
        parts = imp.target.split(".")
        for depth, part in enumerate(parts[1:], start=1):
            owner = ".".join(parts[:depth])
            if is_private(part) and imp.source != owner and not imp.source.startswith(owner + "."):
                problems.append(f"{imp.where()} takes the private module {'.'.join(parts[:depth + 1])} "
                                f"from outside {owner}")
    return problems


def test_every_package_was_parsed():
    """The rules below would pass on nothing: make sure the core and the plugin packages were all read."""
    packages, imports = project_graph()
    assert len(packages.get(CORE, {})) >= 30, f"only {len(packages.get(CORE, {}))} core modules found under {ROOT}"
    plugin_modules = sum(len(modules) for name, modules in packages.items() if name != CORE)
    assert plugin_modules > 10, f"only {plugin_modules} plugin modules found: {sorted(packages)}"
    for expected in ("neurocorr_pearson", "neurocorr_torch", "neurocorr_jax", "neurocorr_paper",
                     "neurocorr_procrustes"):
        assert expected in packages, f"package {expected} not found; found {sorted(packages)}"
    assert len(imports) > 200, f"only {len(imports)} imports found"


def test_the_rules_catch_what_they_are_for(tmp_path):
    """A made-up package with one fault of each kind, hidden where they hide in real code."""
    package, other = tmp_path / "neurocorr_fake", tmp_path / "neurocorr_other"
    files = {
        package / "__init__.py": "from .a import thing\n",
        package / "a.py": "from .b import helper\nthing = 1\n_hidden = 2\n",
        package / "b.py": "def helper():\n    from . import a  # inside a function: still a circle\n    return a\n",
        package / "c.py": "from .a import _hidden\nfrom neurocorr_fake.a import __doc__\n",
        package / "d.py": "import neurocorr_torch.demo\nfrom ._private import x\nfrom . import _private\n",
        package / "_private.py": "x = 1\n",
        other / "__init__.py": "from neurocorr_fake._private import x\n",
    }
    for path, text in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    packages, imports = project_graph([package, other])
    assert circles(packages, imports) == [
        "neurocorr_fake: circle neurocorr_fake.a -> neurocorr_fake.b -> neurocorr_fake.a: "
        f"neurocorr_fake.a ({package / 'a.py'}:1) `from .b import helper`; "
        f"neurocorr_fake.b ({package / 'b.py'}:2) `from . import a`"]
    # Taken as the core, the made-up package imports a plugin package from d.py, and only there.
    assert [p.split(" (")[0] for p in plugin_imports("neurocorr_fake", imports)] == ["neurocorr_fake.d"]
    # A dunder is no private name; a private module is private to its package, not to itself.
    assert [(p.split(" (")[0], p.rsplit("takes ", 1)[1]) for p in private_imports(packages, imports)] == [
        ("neurocorr_fake.c", "the private name '_hidden' from neurocorr_fake.a"),
        ("neurocorr_other", "the private module neurocorr_fake._private from outside neurocorr_fake")]


def test_no_package_imports_itself_in_a_circle():
    problems = circles(*project_graph())
    assert not problems, "modules import each other in a circle:\n" + "\n".join(problems)


def test_core_never_imports_a_plugin_package():
    _, imports = project_graph()
    problems = plugin_imports(CORE, imports)
    assert not problems, "the core imports a plugin package:\n" + "\n".join(problems)


def test_no_module_imports_a_private_name_of_another():
    problems = private_imports(*project_graph())
    assert not problems, "modules import private names of others:\n" + "\n".join(problems)
