"""The reference atlas's file: models of known quality and their comparisons, in SQLite.

An atlas file holds the reference models (name, how to load them, framework, fingerprint, layer
selector, measurements such as ``accuracy`` and ``attacked_accuracy``) and the comparisons
between them, one row per pair and configuration (the compare options and the probe's
fingerprint, see :class:`~neurocorr_scale.grid.GridConfig`). ``neurocorr grid`` fills the
comparisons (:mod:`neurocorr_atlas.fill`), committing each pair as it finishes, so an interrupted
grid resumes where it stopped; ``neurocorr predict`` compares a new model with the references
and estimates its quality (:mod:`neurocorr_atlas.predict`, docs/atlas.md).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurocorr_core import Comparison, NeurocorrError

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
    fingerprint TEXT,              -- see neurocorr_scale.cache.model_fingerprint
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
                                 f"this one reads version {SCHEMA_VERSION} at most. Upgrade neurocorr-atlas "
                                 "(pip install -U neurocorr-atlas) to use it")

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
