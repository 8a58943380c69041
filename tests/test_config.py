"""'neurocorr run experiment.toml': keys derived from the compare parser, validation, outputs."""

import argparse
import csv
import io
import json
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, compare, config, config_schema, hookimpl, plugins
from neurocorr_core.cli import _parser, main
from neurocorr_core.options import Options

pytest.importorskip("matplotlib", reason="reports need matplotlib: pip install 'neurocorr-core[plots]'")

NETS = """
from numpy_models import mlp


def net_a():
    return mlp(0, [12, 8], dead=2)


def net_b():
    return mlp(1, [10])
"""


def compare_parser():
    return config.subparser(_parser(), "compare")


def _extra_metrics():
    from neurocorr_pearson import Pearson

    class PearsonCopy(Pearson):
        name = "pearson-copy"

    class Exploding(Pearson):
        name = "exploding"

        def compute(self):
            raise NeurocorrError("exploding metric: failed on purpose")

    @hookimpl
    def neurocorr_similarity_metrics():
        return [PearsonCopy, Exploding]

    return SimpleNamespace(neurocorr_similarity_metrics=neurocorr_similarity_metrics)


@pytest.fixture
def cli_pm(pm, monkeypatch):
    """The process-wide plugin manager the CLI uses: installed plugins, the numpy provider and
    two test metrics."""
    pm.register(_extra_metrics(), "config-test-metrics")
    monkeypatch.setattr(plugins, "_default", pm)
    return pm


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An experiment folder: the model builders, a probe file and an output folder; the current
    folder is elsewhere, so relative paths must be resolved against the config's folder."""
    exp = tmp_path / "exp"
    (exp / "out").mkdir(parents=True)
    (exp / "nets_for_config.py").write_text(NETS)
    np.save(exp / "probe.npy", np.random.default_rng(0).normal(size=(80, 16)).astype(np.float32))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the builders are found next to the config, not on sys.path
    return exp


GOOD = """
[models]
a = "nets_for_config:net_a"
b = "nets_for_config:net_b"

[compare]
probe = "probe.npy"
probe-limit = 60
layers_a = "*"
layers_b = "kind:activation"
depth_penalty = "none"
batch_size = 16
quiet = true
{metric_line}

[outputs]
json = "out/result-{{metric}}.json"
csv = "out/scores.csv"
report = "out/report-{{metric}}.html"
heatmap = "out/heatmap-{{metric}}.svg"
"""


def write(folder, text, name="experiment.toml"):
    path = folder / name
    path.write_text(text)
    return path


def good(folder, metric_line='metric = "pearson"'):
    return write(folder, GOOD.format(metric_line=metric_line))


# -- keys come from the compare parser ------------------------------------------------------------
def test_every_compare_option_is_a_key_with_its_type_and_choices():
    parser = compare_parser()
    options = config_schema.compare_options(parser)
    dests = {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}
    assert set(options) == dests
    assert options["batch_size"].kind == "int" and options["batch_size"].flag == "--batch-size"
    assert {"channel", "position"} <= set(options["neurons"].choices)
    assert options["signed"].kind == "bool" and not options["probe"].required  # not for two activation files
    assert {"json", "csv", "report", "heatmap"} <= set(options)
    keys = config.keys_table(parser)
    for key in dests - {"json", "csv", "report", "heatmap"}:
        assert f"\n  {key}" in keys


def test_a_new_compare_option_is_a_new_key(folder, cli_pm):
    parser = compare_parser()
    parser.add_argument("--extra-rounds", type=int, default=0, help="a future option")
    path = write(folder, GOOD.format(metric_line="extra_rounds = 3"))
    experiment = config.load(path, parser)
    assert experiment.arguments["pearson"].extra_rounds == 3
    write(folder, GOOD.format(metric_line='extra_rounds = "3"'))
    with pytest.raises(NeurocorrError, match="compare.extra_rounds: must be an integer, not a string '3'"):
        config.load(path, parser)


def test_an_option_with_its_own_parser_is_validated_by_it(folder, cli_pm):
    def fraction(text):
        value = float(text)
        if not 0 < value <= 1:
            raise argparse.ArgumentTypeError(f"a fraction in (0, 1], not {text}")
        return value

    parser = compare_parser()
    parser.add_argument("--share", type=fraction)
    path = write(folder, GOOD.format(metric_line="share = 0.25"))
    assert config.load(path, parser).arguments["pearson"].share == 0.25
    write(folder, GOOD.format(metric_line="share = 2"))
    with pytest.raises(NeurocorrError, match=r"compare\.share: 2 is not valid: a fraction in \(0, 1\], not 2"):
        config.load(path, parser)


def test_config_means_the_same_as_the_command_line(folder, cli_pm):
    parser = compare_parser()
    experiment = config.load(good(folder), parser)
    from_file = vars(experiment.arguments["pearson"])
    typed = vars(parser.parse_args([
        "nets_for_config:net_a", "nets_for_config:net_b", "--probe", str(folder / "probe.npy"),
        "--probe-limit", "60", "--layers-a", "*", "--layers-b", "kind:activation", "--depth-penalty", "none",
        "--batch-size", "16", "--quiet", "--metric", "pearson"]))
    command_line_only = {"json", "csv", "report", "heatmap", "neurocorr_command"}  # outputs: [outputs]
    assert from_file == {key: value for key, value in typed.items() if key not in command_line_only}
    assert Options.from_args(experiment.arguments["pearson"]) == Options.from_args(parser.parse_args([
        "m_a", "m_b", "--probe", "p.npy", "--layers-a", "*", "--layers-b", "kind:activation", "--depth-penalty",
        "none", "--batch-size", "16", "--quiet"]))
    assert experiment.outputs["pearson"] == {
        "json": folder / "out/result-pearson.json", "csv": folder / "out/scores.csv",
        "report": folder / "out/report-pearson.html", "heatmap": folder / "out/heatmap-pearson.svg"}


# -- running --------------------------------------------------------------------------------------
def test_run_writes_every_output_and_equals_compare(folder, cli_pm, capsys, monkeypatch):
    path = good(folder, 'metrics = ["pearson", "pearson-copy"]')
    assert main(["run", str(path)]) == 0
    out = folder / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "result-pearson.json", "result-pearson-copy.json", "report-pearson.html", "report-pearson-copy.html",
        "heatmap-pearson.svg", "heatmap-pearson-copy.svg", "scores.csv"])
    monkeypatch.syspath_prepend(str(folder))
    import nets_for_config

    probe = np.load(folder / "probe.npy")[:60]
    direct = compare(nets_for_config.net_a(), nets_for_config.net_b(), probe, layers_a="*",
                     layers_b="kind:activation", depth_penalty="none", batch_size=16, plugin_manager=cli_pm)
    data = json.loads((out / "result-pearson.json").read_text())
    assert data["score"]["symmetric"] == pytest.approx(direct.score.symmetric, abs=1e-6)  # another process
    assert data["samples"] == 60 and data["config"]["probe"] == "probe.npy[:60]"
    assert json.loads((out / "result-pearson-copy.json").read_text())["config"]["metric"] == "pearson-copy"
    rows = list(csv.DictReader(io.StringIO((out / "scores.csv").read_text())))
    assert {r["metric"] for r in rows} == {"pearson", "pearson-copy"}
    sym = [float(r["score"]) for r in rows if r["side"] == "symmetric"]
    assert sym == pytest.approx([direct.score.symmetric] * 2, abs=1e-6)
    assert (out / "report-pearson.html").read_text().startswith("<!DOCTYPE html>")
    assert "== metric pearson-copy" in capsys.readouterr().out


def test_json_and_csv_to_standard_output_for_scripts(folder, cli_pm, capsys):
    path = good(folder)
    assert main(["run", str(path), "--json", "-", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["config"]["metric"] == "pearson"
    assert "score A->B" in captured.err  # the human summary moved to standard error
    assert main(["run", str(path), "--csv", "-", "--quiet"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["scope"] == "network" and len(rows) > 3


def test_command_line_outputs_replace_the_files(folder, cli_pm, tmp_path):
    path = good(folder)
    target = tmp_path / "elsewhere" / "mine.json"
    assert main(["run", str(path), "--json", "mine.json"]) == 0  # relative to the current folder
    assert json.loads(target.read_text())["samples"] == 60
    assert not (folder / "out" / "result-pearson.json").exists()


def test_no_output_at_all_when_a_later_comparison_fails(folder, cli_pm, capsys):
    path = good(folder, 'metrics = ["pearson", "exploding"]')
    assert main(["run", str(path)]) == 2
    assert "exploding metric: failed on purpose" in capsys.readouterr().err
    assert list((folder / "out").iterdir()) == [], "the first metric's outputs must not be written"


def test_progress_only_on_a_terminal_and_never_with_quiet(monkeypatch):
    metrics = ["pearson", "spearman"]
    assert isinstance(config._progress(metrics, quiet=False), type(iter([])))  # pytest: not a tty
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert type(config._progress(metrics, quiet=False)).__name__ != "list_iterator"
    assert isinstance(config._progress(metrics, quiet=True), type(iter([])))


def test_keys_listing(capsys):
    assert main(["run", "--keys"]) == 0
    out = capsys.readouterr().out
    assert "[models]" in out and "probe_limit  --probe-limit: an integer" in out
    assert "neurons  --neurons: a string, one of: channel, position" in out


# -- bad configs: a clear error naming the key, and nothing written --------------------------------
BAD = [
    ("compare_typo", ("probe-limit = 60", "probe_limt = 60"),
     r"compare\.probe_limt: unknown key \(did you mean 'probe_limit'\?\); allowed keys in \[compare\]: "
     r"batch_size, "),
    ("table_typo", ("[models]", "[model]"),
     r"model: unknown table \(did you mean 'models'\?\); the file holds the tables \[models\], \[compare\], "
     r"\[outputs\]"),
    ("top_level_key", ("[models]", 'probe = "digits"\n[models]'), r"probe: unknown key;"),
    ("wrong_type_int", ("batch_size = 16", 'batch_size = "16"'),
     r"compare\.batch_size: must be an integer, not a string '16'"),
    ("wrong_type_bool", ("quiet = true", 'quiet = "yes"'), r"compare\.quiet: must be true or false, not a string"),
    ("wrong_type_table", ("batch_size = 16", "batch_size = [16]"), r"compare\.batch_size: must be an integer"),
    ("bad_choice", ('depth_penalty = "none"', 'depth_penalty = "nope"'),
     r"compare\.depth_penalty: 'nope' is not allowed; choose one of: paper, none"),
    ("missing_model_file", ('a = "nets_for_config:net_a"', 'a = "nets/missing.pt"'),
     r"models\.a: model file '.*exp/nets/missing\.pt' does not exist \(relative paths are relative to the "
     r"folder of experiment\.toml\)"),
    ("model_not_string", ('a = "nets_for_config:net_a"', "a = 3"),
     r"models\.a: must be a non-empty string, not an integer 3"),
    ("missing_model", ('b = "nets_for_config:net_b"', ""), r"models\.b: missing; \[models\] needs 'a' and 'b'"),
    ("missing_probe_file", ('probe = "probe.npy"', 'probe = "digts"'),
     r"compare\.probe: 'digts' is neither a built-in data set \(digits, .*\) nor a file: '.*exp/digts' does "
     r"not exist"),
    ("missing_probe", ('probe = "probe.npy"', ""), r"compare\.probe: missing; it is required \(--probe"),
    ("output_folder_missing", ('report = "out/report-{metric}.html"', 'report = "gone/report.html"'),
     r"outputs\.report: cannot write .*gone/report\.html: the folder .*gone does not exist"),
    ("output_folder_is_a_file", ('report = "out/report-{metric}.html"', 'report = "probe.npy/report.html"'),
     r"outputs\.report: cannot write .*probe\.npy/report\.html"),
    ("output_is_a_folder", ('report = "out/report-{metric}.html"', 'report = "out"'),
     r"outputs\.report: cannot write .*exp/out: it is a folder; give a file name"),
    ("output_not_a_path", ('json = "out/result-{metric}.json"', "json = 5"),
     r"outputs\.json: must be a file path \(a string\), not an integer 5"),
    ("output_unknown", ('json = "out/result-{metric}.json"', 'pdf = "out/r.pdf"'),
     r"outputs\.pdf: unknown key; allowed keys in \[outputs\]: json, csv, report, heatmap"),
    ("metrics_share_a_file", ('metric = "pearson"', 'metrics = ["pearson", "pearson-copy"]\n'),
     None),
    ("unknown_metric", ('metric = "pearson"', 'metric = "pearsn"'),
     r"compare\.metric: no metric named 'pearsn' \(did you mean 'pearson'\?\); installed: .*pearson"),
    ("metrics_not_list", ('metric = "pearson"', 'metrics = "pearson"'),
     r"compare\.metrics: must be a non-empty list of metric names"),
    ("metric_and_metrics", ('metric = "pearson"', 'metric = "pearson"\nmetrics = ["pearson"]'),
     r"give either 'metric' or 'metrics', not both"),
    ("unknown_matching", ('metric = "pearson"', 'matching = "maximum"'),
     r"compare\.matching: no matching named 'maximum' \(did you mean 'max'\?\)"),
    ("not_toml", ("[compare]", "[compare"), r"experiment\.toml: not valid TOML: .*line"),
]


@pytest.mark.parametrize(("name", "edit", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_a_clear_error_and_writes_nothing(folder, cli_pm, capsys, name, edit, message):
    text = good(folder).read_text()
    old, new = edit
    assert old in text
    text = text.replace(old, new, 1)
    if name == "metrics_share_a_file":
        text = text.replace("result-{metric}.json", "result.json")
        message = (r"outputs\.json: 2 metrics would write the same file .*result\.json'; put \{metric\} in its "
                   r"name, e.g\. result-\{metric\}\.json")
    path = write(folder, text)
    before = sorted(p.name for p in folder.rglob("*"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurocorr: error: {path}: "), err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert sorted(p.name for p in folder.rglob("*")) == before, "nothing may be written"


def test_missing_config_file_and_no_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert f"config file '{tmp_path / 'nope.toml'}' does not exist" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "give the experiment file: neurocorr run experiment.toml" in capsys.readouterr().err


def test_standard_output_only_for_json_and_csv(folder, cli_pm, capsys):
    assert main(["run", str(good(folder)), "--report", "-"]) == 2
    assert "--report -: only --json and --csv can write to standard output" in capsys.readouterr().err
