"""``neurocorr scores RESULT.json``: the scores of a saved result, without recomputing anything."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from neurocorr_core import Command, NeurocorrError


class ScoresCommand(Command):
    name = "scores"
    help = "print the network scores of saved results (compare --json, run --json)"
    examples = """
        neurocorr scores result.json              # after: neurocorr compare A B --probe P --json result.json
        neurocorr scores result.json --layers
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("results", nargs="+", metavar="RESULT.json", help="a result saved with --json")
        parser.add_argument("--layers", action="store_true", help="also each layer's best-match score")

    def run(self, args: argparse.Namespace) -> int:
        for path in args.results:
            for result in read_results(Path(path)):
                print("\n".join(score_lines(result, layers=args.layers)))
        return 0


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results a ``--json`` file holds: one (compare) or a list (run with several metrics)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NeurocorrError(f"cannot read {path}: {exc.strerror}; give a file written by "
                             "'neurocorr compare --json FILE'") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise NeurocorrError(f"{path} is not a JSON file; give a file written by "
                             "'neurocorr compare --json FILE'") from None
    results = data if isinstance(data, list) else [data]
    for result in results:
        if not _is_result(result):
            raise NeurocorrError(f"{path} holds no neurocorr result (no 'score' with a_to_b and b_to_a); "
                                 "give a file written by 'neurocorr compare --json FILE'")
    return results


def _is_result(data: object) -> bool:
    score = data.get("score") if isinstance(data, dict) else None
    return isinstance(score, dict) and all(_number(score.get(k)) for k in ("a_to_b", "b_to_a", "symmetric"))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def score_lines(result: dict[str, Any], layers: bool = False) -> list[str]:
    """``metric  A -> B: a_to_b  B -> A: b_to_a  symmetric: s``, then each layer's score."""
    score = result["score"]
    metric = (result.get("config") or {}).get("metric", "?")
    lines = [f"{result.get('model_a', '?')} vs {result.get('model_b', '?')} ({metric}): A->B {score['a_to_b']:.4f}"
             f"   B->A {score['b_to_a']:.4f}   symmetric {score['symmetric']:.4f}"]
    if layers:
        for side in ("a", "b"):
            lines += [f"  {side.upper()} {layer.get('name', '?'):<29} {_score(layer.get('score'))}"
                      for layer in result.get(f"layers_{side}") or [] if isinstance(layer, dict)]
    return lines


def _score(value: object) -> str:
    return f"{value:.4f}" if _number(value) else "n/a"
