"""The installed plugin: its executor and its command come through the hooks, are listed by
'neurocorr plugins', and the executor gives the local executor's scores."""

import json
import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from neurocorr_core import ActivationProvider, LayerInfo, NeurocorrError, PluginManager, compare, hookimpl
from neurocorr_core.cli import main
from neurocorr_threads import ScoresCommand, ThreadsExecutor


def test_listed_by_neurocorr_plugins_with_what_it_provides():
    proc = subprocess.run([sys.executable, "-m", "neurocorr_core.cli", "plugins", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert "threads" in plugins, "install it: pip install -e examples/neurocorr-threads"
    info = plugins["threads"]
    assert info["status"] == "ok" and info["version"] == "0.1.0"
    assert info["provides"] == {"executor": ["threads"], "command": ["scores"]}
    assert info["hooks"] == ["neurocorr_commands", "neurocorr_executors"]


def test_found_by_name():
    pm = PluginManager()
    assert pm.executor("threads") is ThreadsExecutor
    assert ScoresCommand in pm.commands()


# -- the executor ----------------------------------------------------------------------------------------
def test_tasks_run_at_once_on_the_threads():
    barrier = threading.Barrier(2, timeout=10)  # both tasks must be running together to pass it
    with ThreadsExecutor(workers=2) as pool:
        handles = {tag: pool.submit(barrier.wait) for tag in ("a", "b")}
        assert sorted(dict(pool.as_completed(handles))) == ["a", "b"]


def test_a_handle_given_to_a_later_task_stands_for_its_result():
    with ThreadsExecutor(workers=1) as pool:  # one thread: waiting for an earlier task never deadlocks
        first = pool.submit(lambda: 20)
        second = pool.submit(lambda x, y: x + y, first, 1)
        third = pool.submit(lambda x, y: x * y, second, first)
        assert dict(pool.as_completed({"t": third})) == {"t": 420}
        assert pool.finished(pool.token(first))


def test_a_failed_task_raises_its_own_error():
    def fail():
        raise NeurocorrError("task failed")

    with ThreadsExecutor(workers=2) as pool, pytest.raises(NeurocorrError, match="task failed"):
        list(pool.as_completed({"x": pool.submit(fail)}))


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers_are_refused(workers):
    with pytest.raises(NeurocorrError, match="workers must be a whole number of at least 1"):
        ThreadsExecutor(workers=workers)


def test_an_unknown_option_names_the_options_it_takes():
    with pytest.raises(NeurocorrError, match="executor 'threads' has no option.*threds.*workers"):
        ThreadsExecutor(threds=2)


class ArrayModel:
    """A 'model' whose layers are fixed maps of the input (tanh of a linear map), for an end-to-end run."""

    def __init__(self, maps: dict[str, np.ndarray]) -> None:
        self.maps = maps


class ArrayProvider(ActivationProvider):
    name = "threads-test-arrays"

    @classmethod
    def accepts(cls, model: object) -> bool:
        return isinstance(model, ArrayModel)

    def layers(self, sample):
        return [LayerInfo(name, (m.shape[1],), depth, "activation", "Tanh")
                for depth, (name, m) in enumerate(self.model.maps.items())]

    def activations(self, batches, layers):
        for batch in batches:
            yield {name: np.tanh(batch @ self.model.maps[name]).astype(np.float32) for name in layers}


@hookimpl
def neurocorr_activation_providers():
    return [ArrayProvider]


@pytest.fixture
def pm():
    pytest.importorskip("neurocorr_pearson", reason="the end-to-end run needs the pearson plugin installed")
    manager = PluginManager()
    manager.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "threads-test")
    return manager


def models():
    rng = np.random.default_rng(0)
    a = ArrayModel({"h1": rng.normal(size=(12, 20)), "h2": rng.normal(size=(12, 9))})
    b = ArrayModel({"g1": rng.normal(size=(12, 15))})
    return a, b, rng.normal(size=(90, 12)).astype(np.float32)


@pytest.mark.parametrize("executor", ["by name", "instance"])
def test_the_same_scores_as_the_local_executor(pm, executor):
    a, b, probe = models()
    local = compare(a, b, probe, plugin_manager=pm, progress=False)
    if executor == "by name":
        threaded = compare(a, b, probe, plugin_manager=pm, progress=False, executor="threads",
                           executor_options={"workers": 2}, shards=2)
    else:
        with ThreadsExecutor(workers=2) as pool:
            threaded = compare(a, b, probe, plugin_manager=pm, progress=False, executor=pool, shards=2)
    assert threaded.config["executor"]["executor"] == "threads (2 workers)"
    assert threaded.config["executor"]["shards"] == 2
    for key in ("a_to_b", "b_to_a", "symmetric"):
        assert getattr(threaded.score, key) == pytest.approx(getattr(local.score, key), abs=1e-6)
    np.testing.assert_allclose(threaded.layer_table, local.layer_table, atol=1e-6)


# -- the command -----------------------------------------------------------------------------------------
def test_scores_prints_a_saved_result(pm, tmp_path, capsys):
    a, b, probe = models()
    result = compare(a, b, probe, plugin_manager=pm, progress=False)
    saved = tmp_path / "r.json"
    result.to_json(saved)
    assert main(["scores", str(saved), "--layers"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"A->B {result.score.a_to_b:.4f}   B->A {result.score.b_to_a:.4f}" in out[0] and "(pearson)" in out[0]
    assert out[1].split() == ["A", "h1", f"{result.layers_a[0].score:.4f}"]
    assert len(out) == 1 + len(result.layers_a) + len(result.layers_b)


def test_scores_reads_the_list_run_writes(tmp_path, capsys):
    one = {"model_a": "a", "model_b": "b", "score": {"a_to_b": 0.5, "b_to_a": 0.25, "symmetric": 0.375},
           "config": {"metric": "cka"}}
    (tmp_path / "run.json").write_text(json.dumps([one, {**one, "config": {"metric": "pearson"}}]))
    assert main(["scores", str(tmp_path / "run.json")]) == 0
    assert capsys.readouterr().out == ("a vs b (cka): A->B 0.5000   B->A 0.2500   symmetric 0.3750\n"
                                       "a vs b (pearson): A->B 0.5000   B->A 0.2500   symmetric 0.3750\n")


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    (b"\xff\xfe not text", "is not a JSON file"),
    (b"{", "is not a JSON file"),
    (b'{"score": 1}', "holds no neurocorr result"),
    (b'[{"score": {"a_to_b": 1, "b_to_a": "x", "symmetric": 1}}]', "holds no neurocorr result"),
])
def test_scores_refuses_what_is_not_a_result_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["scores", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurocorr: error: ") and message in err and err.count("\n") == 1
    assert "neurocorr compare --json FILE" in err
