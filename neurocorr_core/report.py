"""The HTML report of a :class:`Comparison`: one self-contained file for people.

The report is one file that needs no network to open: its figures are PNG images embedded as
``data:`` URIs, its style is inline, and it holds no script. It shows the models, the
configuration, the scores (with any confidence interval or significance the result carries),
the heatmaps of both directions, the per-layer and dead-neuron tables and the plugin versions.
The other outputs (JSON, CSV, heatmap images) and the all-or-none writing of several of them
are in :mod:`neurocorr_core.outputs`.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .files import check_writable, write_atomic
from .result import DIRECTIONS, Comparison

#: Top-level keys of ``Comparison.to_dict()`` the report shows in their own sections.
_SHOWN = {"model_a", "model_b", "samples", "score", "layers_a", "layers_b", "layer_table",
          "layer_table_ba", "dead_neurons", "partner_a", "partner_b", "value_a", "value_b", "config", "versions",
          "matched_fraction", "standard_error", "significance"}


def neuron_scores(result: Comparison) -> dict[str, np.ndarray] | None:
    """Each matched neuron's best-match score per direction; None for a layer-level metric."""
    from .plots import metric_level

    if metric_level(result) == "layer":
        return None
    return {label: values[np.isfinite(values)]
            for label, values in (("A → B", result.value_a), ("B → A", result.value_b))}


def html_report(result: Comparison, title: str | None = None) -> str:
    """The whole report as one HTML document (UTF-8 text, figures embedded)."""
    title = title or f"neurocorr: {result.model_a} vs {result.model_b}"
    data = result.to_dict()
    sections = [
        _section("Models", _models(result)),
        _section("Scores", _scores(data)),
        _section("Heatmaps", _figures(result)),
        _section("Layers", _layers(result)),
        _section("Dead neurons", _dead(result)) if neuron_scores(result) is not None else "",
        _section("Configuration", _mapping(result.config)),
        _section("Plugin versions", _mapping(result.versions, ("plugin", "version"))),
    ]
    extra = {k: v for k, v in data.items() if k not in _SHOWN}
    if extra:  # e.g. significance or sampling records the result grew later
        sections.insert(2, _section("Further results", _mapping(extra)))
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<h1>{_e(title)}</h1>\n{''.join(sections)}"
            f"<footer>Written by neurocorr {_e(result.versions.get('builtin', ''))}. "
            f"Self-contained: no network needed to view it.</footer>\n</body>\n</html>\n")


def write_report(result: Comparison, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Render and write the HTML report atomically (no file at all if rendering fails)."""
    target = Path(path)
    check_writable(target)
    write_atomic(target, html_report(result, title))
    return target


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem;word-break:break-all}h2{font-size:1.2rem;border-bottom:1px solid #d0d4dc;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #d0d4dc;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f1f3f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.headline td.num{font-size:1.2rem;font-weight:600}
tr.dead td{background:#fff4e0}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #e3e6ec}
figcaption{font-size:.85rem;color:#4a5263}
code{word-break:break-all}footer{margin-top:2rem;font-size:.8rem;color:#6a7283}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return _e(_plain(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return "n/a" if not np.isfinite(value) else f"{float(value):.4f}"


def _plain(value: object) -> str:
    """A compact text form of a configuration or result value."""
    if value is None:
        return "—"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"[{_num_text(value[0])}, {_num_text(value[1])}]"  # an interval
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, float):
        return _num_text(value)
    return str(value)


def _num_text(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _section(heading: str, body: str) -> str:
    return f"<section>\n<h2>{_e(heading)}</h2>\n{body}\n</section>\n"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], row_class: Iterable[str] = ()) -> str:
    classes = list(row_class)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for i, row in enumerate(rows):
        attr = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        lines.append(f"<tr{attr}>{''.join(row)}</tr>\n")
    body = "".join(lines)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _td(value: object, numeric: bool = False) -> str:
    return f"<td class=\"num\">{_num(value)}</td>" if numeric else f"<td>{_e(_plain(value))}</td>"


def _models(result: Comparison) -> str:
    cfg = result.config
    rows = [[_td("A"), f"<td><code>{_e(result.model_a)}</code></td>", _td(cfg.get("provider_a")),
             _td(len(result.layers_a), True), _td(sum(lr.neurons for lr in result.layers_a), True)],
            [_td("B"), f"<td><code>{_e(result.model_b)}</code></td>", _td(cfg.get("provider_b")),
             _td(len(result.layers_b), True), _td(sum(lr.neurons for lr in result.layers_b), True)]]
    probe = f"<p>Probe <code>{_e(cfg.get('probe', '?'))}</code>, {result.samples:,} samples.</p>"
    return _table(["", "model", "provider", "layers", "neurons"], rows) + probe


def _scores(data: Mapping[str, Any]) -> str:
    """The network score per direction, with its standard error and matched share when the
    result has them, then the significance record (bootstrap interval, permutation test)."""
    score = data["score"]
    error, matched = data.get("standard_error") or {}, data.get("matched_fraction") or {}
    labels = {"a_to_b": "A → B", "b_to_a": "B → A", "symmetric": "symmetric"}
    header = ["direction", "network score"]
    header += ["standard error"] if error else []
    header += ["matched share"] if matched else []
    rows = []
    for key in (k for k in DIRECTIONS if k in score):
        row = [_td(labels[key]), _td(score[key], True)]
        row += [_td(error.get(key), True)] if error else []
        row += [_td(matched.get(key), True)] if matched else []
        rows.append(row)
    parts = [_table(header, rows).replace("<table>", "<table class=\"headline\">", 1)]
    extra = {k: v for k, v in score.items() if k not in DIRECTIONS}
    if extra:
        parts.append(_mapping(extra))
    parts.append(_significance(data.get("significance")))
    return "\n".join(parts)


def _significance(sig: Mapping[str, Any] | None) -> str:
    if not sig:
        return "<p>No confidence interval or significance test was computed for this comparison.</p>"
    lines = []
    if sig.get("ci") is not None:
        lo, hi = sig["ci"]
        lines.append(f"{float(sig.get('confidence', 0.95)):.0%} bootstrap confidence interval of the "
                     f"{_e(sig.get('statistic', 'symmetric'))} score: <strong>[{_num(lo)}, {_num(hi)}]</strong> "
                     f"({_num(sig.get('bootstrap'))} resamples of the probe)")
    if sig.get("permutations"):
        lines.append(f"permutation test ({_num(sig['permutations'])} shuffles of the "
                     f"{_e(sig.get('permuted', 'probe'))}): z = {_num(sig.get('z'))}, "
                     f"p = {_num(sig.get('p_value'))}, null {_num(sig.get('null_mean'))} "
                     f"± {_num(sig.get('null_std'))}")
    body = "".join(f"<li>{line}</li>" for line in lines)
    return f"<ul class=\"significance\">{body}</ul>" + _mapping(dict(sig), ("quantity", "value"))


def _mapping(values: Mapping[str, Any], header: tuple[str, str] = ("key", "value")) -> str:
    """A two-column table; nested mappings become nested tables."""
    rows = []
    for key, value in values.items():
        cell = (f"<td>{_mapping(value)}</td>" if isinstance(value, Mapping) and value
                else _td(value, isinstance(value, (int, float)) and not isinstance(value, bool)))
        rows.append([f"<th>{_e(key)}</th>", cell])
    return _table(header, rows) if rows else "<p>—</p>"


def _figures(result: Comparison) -> str:
    from . import plots

    if plots.is_symmetric(result):  # CKA: B -> A is A -> B transposed, one heatmap says it all
        metric = result.config.get("metric", "layer")
        return _img(plots.to_bytes(plots.heatmap(result, "a_to_b")), "heatmap of A's and B's layers",
                    f"Cell (i, j) is the {metric} similarity of A's layer i and B's layer j (no depth "
                    f"penalty). {metric} is symmetric: B → A is the same matrix transposed.")
    if plots.metric_level(result) == "layer":
        what = f"the {result.config.get('metric', 'layer')} similarity of A's layer i and B's layer j"
    else:
        what = "the mean best-match score of the neurons of A's layer i within B's layer j (no depth penalty)"
    parts = [_img(plots.to_bytes(plots.heatmap(result, "a_to_b")), "heatmap A to B",
                  f"A → B: cell (i, j) is {what}."),
             _img(plots.to_bytes(plots.heatmap(result, "b_to_a")), "heatmap B to A",
                  "B → A: the same from B's layers (rows) to A's layers (columns).")]
    per_neuron = neuron_scores(result)
    if per_neuron is not None:
        fig = plots.neuron_histogram(per_neuron, title="per-neuron best-match scores")
        parts.append(_img(plots.to_bytes(fig), "histogram of per-neuron scores",
                          "Each neuron's best-match score in the other model, as in the network score."))
    return "\n".join(parts)


def _img(png: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img class=\"figure\" alt=\"{_e(alt)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _layers(result: Comparison) -> str:
    rows = []
    for side, layers in (("A", result.layers_a), ("B", result.layers_b)):
        rows += [[_td(side), _td(lr.index, True), f"<td><code>{_e(lr.info.name)}</code></td>",
                  _td(lr.info.kind), _td(lr.info.op), _td("x".join(map(str, lr.info.shape))),
                  _td(lr.info.depth, True), _td(lr.neurons, True), _td(lr.score, True)] for lr in layers]
    return _table(["model", "#", "layer", "kind", "op", "shape", "depth", "neurons", _layer_score_header(result)],
                  rows)


def _layer_score_header(result: Comparison) -> str:
    from .plots import metric_level

    if metric_level(result) != "layer":
        return "mean best-match score"
    penalty = " over the depth penalty" if result.config.get("depth_penalty") == "paper" else ""
    return f"highest {result.config.get('metric', 'similarity')} with a layer of the other model{penalty}"


def _dead(result: Comparison) -> str:
    rows, classes = [], []
    for side, layers in (("A", result.layers_a), ("B", result.layers_b)):
        for lr in layers:
            share = lr.dead / lr.neurons if lr.neurons else 0.0
            rows.append([_td(side), f"<td><code>{_e(lr.info.name)}</code></td>", _td(lr.dead, True),
                         _td(lr.neurons, True), f"<td class=\"num\">{share:.1%}</td>"])
            classes.append("dead" if lr.dead else "")
    total = sum(lr.dead for lr in (*result.layers_a, *result.layers_b))
    note = (f"<p>{total:,} neuron(s) were constant over the probe; their correlation is undefined "
            "and counts as 0 in the scores.</p>" if total else "<p>No neuron was constant over the probe.</p>")
    return note + _table(["model", "layer", "dead", "neurons", "dead share"], rows, classes)
