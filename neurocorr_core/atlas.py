"""The reference atlas: models of known quality and their comparisons, in SQLite.

An atlas file holds the reference models (name, how to load them, framework, fingerprint, layer
selector, measurements such as ``accuracy`` and ``attacked_accuracy``) and the comparisons
between them, one row per pair and configuration (the compare options and the probe's
fingerprint, see :class:`~neurocorr_core.grid.GridConfig`). ``neurocorr grid`` fills the
comparisons, committing each pair as it finishes, so an interrupted grid resumes where it
stopped; ``neurocorr predict`` compares a new model with the references and estimates its
quality (docs/atlas.md).

Trust is never stored: ``atlas add --trust-pickle`` lets that one command unpickle the model,
and every later ``grid``/``predict`` must be given ``--trust-pickle`` by whoever runs it (an
atlas is a file others can write; an older atlas's stored ``trust_pickle`` option is ignored).

The location is a file path or a ``sqlite:///PATH`` URL (the scheme leaves room for a server
database later). The schema carries a version number: an atlas written by a newer neurocorr
is refused rather than misread.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .compare import open_model
from .errors import NeurocorrError
from .executor import model_source
from .plugins import PluginManager, get_plugin_manager
from .result import Comparison

SCHEMA_VERSION = 1
#: The provider option that allows unpickling: a decision of whoever runs the command, never stored.
TRUST = "trust_pickle"
#: Measurement names the CLI has options for; any other name is allowed with --measure NAME=VALUE.
KNOWN_MEASURES = ("accuracy", "attacked_accuracy")

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE models (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,          -- absolute file path or module:callable reference
    framework TEXT NOT NULL,       -- the provider that loads it (torch, tensorflow, onnx, ...)
    fingerprint TEXT,              -- see neurocorr_core.cache.model_fingerprint
    layers TEXT,                   -- layer selector (NULL: every activation layer)
    options TEXT NOT NULL,         -- provider options, JSON
    added TEXT NOT NULL
);
CREATE TABLE measurements (
    model TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (model, name)
);
CREATE TABLE configurations (
    key TEXT PRIMARY KEY,          -- GridConfig.key(probe)
    config TEXT NOT NULL,          -- the compare options, JSON
    probe TEXT NOT NULL,           -- the probe's name
    samples INTEGER NOT NULL
);
CREATE TABLE comparisons (
    config TEXT NOT NULL REFERENCES configurations(key),
    model_a TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    model_b TEXT NOT NULL REFERENCES models(name) ON DELETE CASCADE,
    fingerprint_a TEXT,
    fingerprint_b TEXT,
    a_to_b REAL NOT NULL,
    b_to_a REAL NOT NULL,
    symmetric REAL NOT NULL,
    result TEXT NOT NULL,          -- the comparison as JSON, without per-neuron partners
    created TEXT NOT NULL,
    PRIMARY KEY (config, model_a, model_b)
);
"""


@dataclass(frozen=True)
class AtlasModel:
    """A reference model as the atlas stores it."""

    name: str
    source: str
    framework: str
    fingerprint: str | None
    layers: str | None
    options: dict[str, Any]
    measurements: dict[str, float] = field(default_factory=dict)
    added: str = ""
    #: Added by an older neurocorr that stored trust_pickle among the options: the option is
    #: ignored, but the stored fingerprint was computed with it (see grid_models).
    legacy_trust: bool = False


def atlas_path(location: str | os.PathLike[str]) -> Path:
    """The SQLite file of a path or ``sqlite:///PATH`` URL; other URLs are refused."""
    text = os.fspath(location)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "sqlite":
            raise NeurocorrError(f"atlas {text!r}: only SQLite atlases are supported so far; give a file "
                                 "path or sqlite:///PATH")
        if not rest.startswith("/") or rest == "/":
            raise NeurocorrError(f"atlas {text!r}: write a SQLite URL as sqlite:///relative/path.db or "
                                 "sqlite:////absolute/path.db")
        text = rest[1:]
    return Path(text).expanduser()


class Atlas:
    """An open atlas. ``create``: make the file if it does not exist (else it must exist)."""

    def __init__(self, location: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = atlas_path(location)
        if not self.path.exists():
            if not create:
                raise NeurocorrError(f"no atlas at {self.path}; create one by adding a model: "
                                     "neurocorr atlas add MODEL --name NAME --atlas " + str(self.path))
            if not self.path.parent.is_dir():
                raise NeurocorrError(f"cannot create atlas {self.path}: folder {self.path.parent} does not "
                                     "exist")
        if self.path.is_dir():
            raise NeurocorrError(f"atlas {self.path} is a folder; give a file path such as atlas.db")
        self.db = sqlite3.connect(self.path, timeout=30)
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self._check_schema()
        except BaseException:
            self.db.close()
            raise

    def __enter__(self) -> Atlas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _check_schema(self) -> None:
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # damaged text: not UTF-8
            raise NeurocorrError(f"{self.path} is not an atlas (not a SQLite database: {exc}); give another "
                                 "--atlas path") from None
        if not tables:
            with self.db:
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            return
        if "schema_version" not in tables:
            raise NeurocorrError(f"{self.path} is a SQLite database but not a neurocorr atlas (no "
                                 "schema_version table); give another --atlas path")
        rows = self._rows("SELECT MAX(version) FROM schema_version")
        version = rows[0][0] if rows else None
        if not isinstance(version, int):
            raise NeurocorrError(f"atlas {self.path} has no valid schema version; it may be damaged")
        if version > SCHEMA_VERSION:
            raise NeurocorrError(f"atlas {self.path} has schema version {version}, written by a newer "
                                 "neurocorr; "
                                 f"this one reads version {SCHEMA_VERSION} at most. Upgrade neurocorr-core "
                                 "(pip install -U neurocorr-core) to use it")

    # -- models ------------------------------------------------------------------------------------
    def add(self, model: AtlasModel) -> None:
        """Store a model and its measurements; a name already used is an error."""
        self.check_free(model.name)
        with self.db:
            self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (model.name, model.source, model.framework, model.fingerprint, model.layers,
                             json.dumps(untrusted(model.options)), model.added or _now()))
            self.db.executemany("INSERT INTO measurements VALUES (?, ?, ?)",
                                [(model.name, k, float(v)) for k, v in model.measurements.items()])

    def check_free(self, name: str) -> None:
        """Raise unless no model is called ``name``."""
        if self._rows("SELECT 1 FROM models WHERE name = ?", (name,)):
            raise NeurocorrError(f"the atlas already has a model named {name!r}; choose another --name, "
                                 f"or remove the old one first: neurocorr atlas rm {name}")

    def remove(self, name: str) -> None:
        """Delete a model with its measurements and comparisons."""
        self.model(name)
        with self.db:
            self.db.execute("DELETE FROM models WHERE name = ?", (name,))

    def models(self) -> list[AtlasModel]:
        """Every model, in the order they were added."""
        found: dict[str, dict[str, float]] = {}
        for model, name, value in self._rows("SELECT model, name, value FROM measurements ORDER BY name"):
            if not isinstance(value, (int, float)) or not isinstance(name, str):
                raise self._damaged(f"measurement {name!r} of model {model!r} is {value!r}, not a number")
            found.setdefault(model, {})[name] = value
        return [_model_row(r, found.get(r[0], {}), self)
                for r in self._rows("SELECT name, source, framework, fingerprint, layers, options, "
                                    "added FROM models ORDER BY rowid")]

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A query's rows; a damaged file is one NeurocorrError, not a sqlite3 traceback."""
        try:
            return self.db.execute(sql, params).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # damaged text: not UTF-8
            raise self._damaged(str(exc)) from None

    def _damaged(self, what: str) -> NeurocorrError:
        return NeurocorrError(f"atlas {self.path} is damaged ({what}); restore it from a copy, or start a new "
                              "atlas (--atlas NEW.db) and add the models again")

    def _json(self, text: Any, what: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError, RecursionError):  # not text, not JSON, nested too deep
            raise self._damaged(f"{what} is not valid JSON") from None

    def model(self, name: str) -> AtlasModel:
        for m in self.models():
            if m.name == name:
                return m
        names = ", ".join(m.name for m in self.models()) or "none"
        raise NeurocorrError(f"the atlas has no model named {name!r}; its models: {names}")

    # -- comparisons --------------------------------------------------------------------------------
    def done(self, key: str) -> dict[tuple[str, str], tuple[float, float]]:
        """The pairs stored under configuration ``key``: ``(a, b) -> (score a->b, score b->a)``."""
        rows = self._rows("SELECT model_a, model_b, a_to_b, b_to_a FROM comparisons WHERE config = ?", (key,))
        if not all(isinstance(v, (int, float)) for row in rows for v in row[2:]):
            raise self._damaged(f"a comparison under configuration {key!r} holds a score that is not a number")
        return {(a, b): (ab, ba) for a, b, ab, ba in rows}

    def record(self, key: str, config: Mapping[str, Any], comparison: Comparison, a: str, b: str,
               fingerprints: tuple[str | None, str | None] = (None, None)) -> None:
        """Store one finished pair (and its configuration, the first time), in one transaction."""
        result = comparison.to_dict()
        for heavy in ("partner_a", "partner_b"):
            result.pop(heavy, None)
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO configurations VALUES (?, ?, ?, ?)",
                            (key, json.dumps(dict(config), sort_keys=True, default=repr),
                             str(comparison.config.get("probe")), comparison.samples))
            self.db.execute("INSERT OR REPLACE INTO comparisons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (key, a, b, fingerprints[0], fingerprints[1], comparison.score.a_to_b,
                             comparison.score.b_to_a, comparison.score.symmetric,
                             json.dumps(result, default=_json_default), _now()))

    def symmetric(self, key: str, names: Sequence[str]) -> np.ndarray:
        """(len(names), len(names)) symmetric scores under ``key``; NaN where not compared (and
        on the diagonal)."""
        index = {n: i for i, n in enumerate(names)}
        out = np.full((len(names), len(names)), np.nan)
        for (a, b), (ab, ba) in self.done(key).items():
            if a in index and b in index:
                out[index[a], index[b]] = out[index[b], index[a]] = (ab + ba) / 2
        return out

    def configurations(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT c.key, c.config, c.probe, c.samples, COUNT(p.model_a) FROM "
                          "configurations c "
                          "LEFT JOIN comparisons p ON p.config = c.key GROUP BY c.key ORDER BY c.rowid")
        return [{"key": k, "config": self._json(cfg, f"configuration {k!r}"), "probe": probe, "samples": n,
                 "pairs": pairs} for k, cfg, probe, n, pairs in rows]


def _model_row(row: Sequence[Any], measurements: dict[str, float], atlas: Atlas) -> AtlasModel:
    """An :class:`AtlasModel` from its row; a ``trust_pickle`` option an older neurocorr stored is
    dropped (trust is asked of the person running each command, not read from the file)."""
    if not all(isinstance(v, str) for v in row[:3]) or not all(v is None or isinstance(v, str) for v in row[3:5]):
        raise atlas._damaged(f"model {row[0]!r} has a name, source, framework, fingerprint or layers that is "
                             "not text")
    options = atlas._json(row[5], f"the options of model {row[0]!r}")
    if not isinstance(options, dict):
        raise atlas._damaged(f"the options of model {row[0]!r} are not a JSON object")
    legacy = bool(options.pop(TRUST, False)) if isinstance(options, dict) else False
    return AtlasModel(row[0], row[1], row[2], row[3], row[4], options, measurements, row[6], legacy)


def untrusted(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the trust to unpickle: what may be stored or fingerprinted."""
    return {k: v for k, v in options.items() if k != TRUST}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def check_measurements(measurements: Mapping[str, float]) -> dict[str, float]:
    out = {}
    for name, value in measurements.items():
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise NeurocorrError(f"measurement name {name!r} must be letters, digits, '_' or '-' "
                                 "(e.g. accuracy, attacked_accuracy)")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise NeurocorrError(f"measurement {name}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise NeurocorrError(f"measurement {name}={value!r} must be a finite number")
        out[name] = number
    return out


def add_model(atlas: Atlas, model: str | os.PathLike[str], name: str, *, measurements: Mapping[str, float],
              layers: str | None = None, provider: str | None = None,
              options: Mapping[str, Any] | None = None,
              plugin_manager: PluginManager | None = None) -> AtlasModel:
    """Open ``model`` (a path or ``module:callable``; checks it loads), fingerprint it and store it.
    ``options`` may hold ``trust_pickle`` to open a pickled model now; it is not stored."""
    if not isinstance(model, (str, os.PathLike)):
        raise NeurocorrError("an atlas stores models as file paths or 'module:callable' references, so that "
                             f"a grid can load them again; got an object of type {type(model).__name__}")
    measurements = check_measurements(measurements)
    atlas.check_free(name)
    opts = dict(options or {})
    opened = open_model(model, provider=provider, pm=plugin_manager or get_plugin_manager(), **opts)
    try:
        source = model_source(model, opened, untrusted(opts))  # trust does not change the model
    finally:
        opened.close()
    where = os.fspath(source.spec) if isinstance(source.spec, (str, os.PathLike)) else str(model)
    entry = AtlasModel(name, where, opened.name, source.fingerprint, layers, untrusted(opts), dict(measurements))
    atlas.add(entry)
    return entry


def grid_models(models: Iterable[AtlasModel], trust_pickle: bool = False) -> list[Any]:
    """The atlas's models as :class:`~neurocorr_core.grid.GridModel` (each with its provider).
    ``trust_pickle``: the person running the command allows unpickling them (never stored)."""
    from .grid import GridModel

    trust = {TRUST: True} if trust_pickle else {}
    return [GridModel(m.name, m.source, m.layers, m.framework, {**m.options, **trust},
                      {**m.options, TRUST: True} if m.legacy_trust else None) for m in models]


# -- filling the atlas --------------------------------------------------------------------------------
def recorder(atlas: Atlas, key: str, config: Any, probe: Any,
             fingerprints: Mapping[str, str | None]) -> Any:
    """An ``on_pair`` callback storing each finished reference pair under ``key``."""
    stored = {**config.to_dict(), "probe": probe.name, "samples": len(probe)}

    def store(a: str, b: str, comparison: Comparison) -> None:
        if a in fingerprints and b in fingerprints:
            atlas.record(key, stored, comparison, a, b, (fingerprints[a], fingerprints[b]))
    return store


def fill(atlas: Atlas, probe: Any, *, config: Any = None, names: Sequence[str] | None = None,
         on_pair: Any = None, plugin_manager: PluginManager | None = None, trust_pickle: bool = False,
         **run: Any) -> Any:
    """Compare every pair of the atlas's models (or of ``names``) not yet compared under this
    configuration and probe, storing each pair as it finishes; returns the
    :class:`~neurocorr_core.grid.GridResult` of the pairs run now. ``trust_pickle``: allow
    unpickling the models (the atlas never stores it). ``run``: the executor, shard and cache
    keywords of :func:`~neurocorr_core.grid.grid`."""
    from .grid import GridConfig, grid
    from .probe import load_probe

    probe = load_probe(probe)
    config = config or GridConfig()
    refs = atlas.models()
    if names is not None:
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            atlas.model(name)
        refs = [m for m in refs if m.name in wanted]
    if len(refs) < 2:
        raise NeurocorrError(f"a grid needs at least 2 models; the atlas {atlas.path} has {len(refs)}. "
                             "Add models with: neurocorr atlas add MODEL --name NAME --accuracy ...")
    key = config.key(probe)
    fps = {m.name: m.fingerprint for m in refs}
    store = recorder(atlas, key, config, probe, fps)

    def both(a: str, b: str, comparison: Comparison) -> None:
        store(a, b, comparison)
        if on_pair is not None:
            on_pair(a, b, comparison)
    return grid(grid_models(refs, trust_pickle), probe, config=config, skip=list(atlas.done(key)), on_pair=both,
                fingerprints=fps, plugin_manager=plugin_manager, **run)


# -- command line: neurocorr atlas add|ls|rm, neurocorr grid -----------------------------------------------
def add_commands(sub: Any) -> None:
    """Add ``neurocorr atlas`` and ``neurocorr grid`` to the CLI's subparsers."""
    from .cli_options import add_comparison_options, add_model_options
    from .executor import add_arguments

    p = sub.add_parser("atlas", help="the reference atlas: models of known quality (docs/atlas.md)")
    actions = p.add_subparsers(required=True, metavar="ACTION", dest="action")
    a = actions.add_parser("add", help="add a reference model with its measurements")
    a.add_argument("model", help="model file or module:callable reference")
    a.add_argument("--name", help="its unique name in the atlas (default: the file name without extension)")
    _atlas_option(a)
    a.add_argument("--accuracy", type=float, help="measured (test) accuracy, e.g. 0.97")
    a.add_argument("--attacked-accuracy", type=float, help="accuracy under attack, e.g. 0.71")
    a.add_argument("--measure", action="append", default=[], metavar="NAME=VALUE",
                   help="any other measurement (repeatable), e.g. --measure robustness=0.4")
    a.add_argument("--layers", help="layer globs or kind:KIND of the neurons to compare (default "
                                    "kind:activation)")
    add_model_options(a)
    a.set_defaults(run=_atlas_add)
    ls = actions.add_parser("ls", help="list the models, their measurements and the stored comparisons")
    _atlas_option(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(run=_atlas_ls)
    rm = actions.add_parser("rm", help="remove a model with its measurements and comparisons")
    rm.add_argument("name")
    _atlas_option(rm)
    rm.set_defaults(run=_atlas_rm)

    g = sub.add_parser("grid", help="compare every pair of the atlas's models; resumes an interrupted run")
    _atlas_option(g)
    g.add_argument("--models", help="comma-separated model names (default: all)")
    trust_option(g, "the atlas's models")

    add_comparison_options(g, layers=False)
    add_arguments(g, cache_default=True)
    g.add_argument("--quiet", action="store_true", help="no line per finished pair")
    g.set_defaults(run=_grid)


def trust_option(p: Any, what: str) -> None:
    """--trust-pickle: this command may unpickle ``what``; asked each time, never stored."""
    p.add_argument("--trust-pickle", action="store_true",
                   help=f"allow loading {what} from pickles (runs code from the files; the atlas does not "
                        "remember it, give it every time)")


def _atlas_option(p: Any) -> None:
    p.add_argument("--atlas", default="atlas.db", help="atlas file or sqlite:///PATH (default atlas.db)")


def _measurements(args: Any) -> dict[str, float]:
    found: dict[str, Any] = {}
    if args.accuracy is not None:
        found["accuracy"] = args.accuracy
    if args.attacked_accuracy is not None:
        found["attacked_accuracy"] = args.attacked_accuracy
    for item in args.measure:
        name, eq, value = item.partition("=")
        if not eq:
            raise NeurocorrError(f"--measure {item!r}: write NAME=VALUE, e.g. --measure robustness=0.4")
        if name.strip() in found:
            raise NeurocorrError(f"measurement {name.strip()!r} is given twice")
        found[name.strip()] = value
    return check_measurements(found)


def _atlas_add(args: Any) -> int:
    from .cli_options import model_options
    from .models import is_reference

    name = args.name or (args.model.rpartition(":")[2] if is_reference(args.model) else Path(args.model).stem)
    measurements = _measurements(args)
    new = not atlas_path(args.atlas).exists()
    try:
        with Atlas(args.atlas, create=True) as atlas:
            entry = add_model(atlas, args.model, name, measurements=measurements, layers=args.layers,
                              provider=args.provider, options=model_options(args))
    except BaseException:
        if new:  # a model that fails to load leaves no empty atlas behind
            atlas_path(args.atlas).unlink(missing_ok=True)
        raise
    shown = ", ".join(f"{k} {v:g}" for k, v in entry.measurements.items()) or "no measurements"
    print(f"added {entry.name} ({entry.framework}; {shown}) to {atlas.path}")
    return 0


def _atlas_ls(args: Any) -> int:
    with Atlas(args.atlas) as atlas:
        models, configs = atlas.models(), atlas.configurations()
    if args.json:
        listed = [{k: v for k, v in m.__dict__.items() if k != "legacy_trust"} for m in models]
        print(json.dumps({"models": listed, "configurations": configs}, indent=2))
        return 0
    print(f"{atlas.path}: {len(models)} model(s)")
    width = max([len(m.name) for m in models] + [4])
    for m in models:
        shown = "  ".join(f"{k} {v:.4g}" for k, v in m.measurements.items()) or "-"
        print(f"  {m.name:<{width}}  {m.framework:<10} {shown:<40} {m.layers or 'kind:activation'}  "
              f"{m.source}")
    for c in configs:
        cfg = c["config"]
        print(f"comparisons {c['key']}: {c['pairs']} pair(s) on {c['probe']} ({c['samples']} samples), "
              f"{cfg.get('metric')}/{cfg.get('matching')}, neurons {cfg.get('neurons')}, "
              f"depth penalty {cfg.get('depth_penalty')}")
    return 0


def _atlas_rm(args: Any) -> int:
    with Atlas(args.atlas) as atlas:
        atlas.remove(args.name)
    print(f"removed {args.name} from {atlas.path}")
    return 0


def _grid(args: Any) -> int:
    from .executor import options_from
    from .grid import config_from

    run = options_from(args, True)  # checked before anything is opened
    config, probe = config_from(args)
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else None
    with Atlas(args.atlas) as atlas:
        key = config.key(probe)
        before = len(atlas.done(key))

        def show(a: str, b: str, comparison: Comparison) -> None:
            if not args.quiet:
                print(f"  {a} vs {b}: {comparison.score.symmetric:.4f} (A->B {comparison.score.a_to_b:.4f}, "
                      f"B->A {comparison.score.b_to_a:.4f})", flush=True)
        result = fill(atlas, probe, config=config, names=names, on_pair=show, trust_pickle=args.trust_pickle,
                      **run)
        models = [m.name for m in atlas.models() if names is None or m.name in names]
        matrix = atlas.symmetric(key, models)
    print(f"grid {key} on {probe.name} ({len(probe)} samples): {len(result.computed)} pair(s) computed "
          f"in {result.seconds:.1f} s on {result.executor} ({result.shards} shard(s)), {before} already "
          "stored")
    width = max(len(n) for n in models)
    print(" " * width + "  " + " ".join(f"{n[:8]:>8}" for n in models))
    for name, row in zip(models, matrix, strict=True):
        print(f"{name:<{width}}  " + " ".join("       -" if np.isnan(v) else f"{v:8.4f}" for v in row))
    return 0
