"""Provider options from the command line (--option, --option-a, --option-b) and their checks."""

import argparse
import json
from collections.abc import Iterable, Iterator, Sequence
from types import SimpleNamespace

import numpy as np
import pytest

from neurocorr_core import NeurocorrError, hookimpl
from neurocorr_core import plugins as plugins_module
from neurocorr_core.cli import main
from neurocorr_core.cli_options import add_model_options, model_options
from neurocorr_core.compare import open_model
from numpy_models import NumpyProvider, mlp


class ScaledProvider(NumpyProvider):
    """The numpy test provider with one option: every output multiplied by ``scale``."""

    name = "numpy-scaled"

    def __init__(self, model: object, *, scale: float = 1.0, **options: object) -> None:
        super().__init__(model, **options)
        self.scale = scale

    def activations(self, batches: Iterable[np.ndarray], layers: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
        for out in super().activations(batches, layers):
            yield {name: a * np.float32(self.scale) for name, a in out.items()}


@hookimpl
def neurocorr_activation_providers():
    return [ScaledProvider]


def net():
    return mlp(5, [6, 4])


@pytest.fixture
def cli(pm, monkeypatch, tmp_path):
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "numpy-scaled")
    monkeypatch.setattr(plugins_module, "_default", pm)
    np.save(tmp_path / "probe.npy", np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32))
    return tmp_path


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_model_options(p, "-a")
    return p.parse_args(list(argv))


def test_values_are_json_when_they_parse_and_text_otherwise():
    args = parse("--option-a", "layout=nhwc", "--option-a", "threads=2", "--option-a", "on=true",
                 "--option-a", 'kw={"train": false}', "--option-a", "shape=[1, 2]", "--option-a", "eq=a=b")
    assert model_options(args, "-a") == {"layout": "nhwc", "threads": 2, "on": True, "kw": {"train": False},
                                         "shape": [1, 2], "eq": "a=b"}


def test_trust_pickle_joins_the_options_and_nothing_given_is_empty():
    assert model_options(parse(), "-a") == {}
    assert model_options(parse("--trust-pickle-a", "--option-a", "x=1"), "-a") == {"x": 1, "trust_pickle": True}


@pytest.mark.parametrize("bad", ["layout", "=nhwc", "two words=1", "1x=2"])
def test_malformed_option_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("--option-a", bad)
    assert exc.value.code == 2
    assert "expected KEY=VALUE with KEY a name" in capsys.readouterr().err


def test_unknown_option_is_refused_with_the_options_the_provider_takes(pm):
    pm.register(SimpleNamespace(neurocorr_activation_providers=neurocorr_activation_providers), "numpy-scaled")
    with pytest.raises(NeurocorrError, match="provider 'numpy-scaled' has no option\\(s\\) colour, size; "
                                             "the options it takes: scale"):
        open_model(net(), provider="numpy-scaled", pm=pm, colour="red", size=3)
    with pytest.raises(NeurocorrError, match="provider 'numpy-test' has no option\\(s\\) scale; the options "
                                             "it takes: none"):
        open_model(net(), provider="numpy-test", pm=pm, scale=2)
    assert open_model(net(), provider="numpy-test", pm=pm, trust_pickle=True).name == "numpy-test"
    with pytest.raises(NeurocorrError, match="provider 'numpy-scaled' has no option\\(s\\) colour"):
        ScaledProvider(net(), colour="red")  # built directly (as the executor's workers do): the same check


def test_cli_option_reaches_the_provider(cli, capsys):
    """Scaling one side's outputs by -1 leaves |r| at 1 but turns signed r to -1: the option arrived."""
    base = ["compare", "test_cli_options:net", "test_cli_options:net", "--probe", str(cli / "probe.npy"),
            "--provider-a", "numpy-scaled", "--provider-b", "numpy-scaled", "--signed", "--quiet"]
    assert main([*base, "--json", str(cli / "same.json")]) == 0
    assert main([*base, "--option-b", "scale=-1", "--json", str(cli / "flipped.json")]) == 0
    same, flipped = (json.loads((cli / f"{n}.json").read_text()) for n in ("same", "flipped"))
    assert same["score"]["a_to_b"] > 0.5
    assert flipped["score"]["a_to_b"] < same["score"]["a_to_b"]
    capsys.readouterr()
    assert main([*base, "--option-a", "colour=red"]) == 2
    assert "provider 'numpy-scaled' has no option(s) colour" in capsys.readouterr().err


def test_run_files_take_provider_options(cli, capsys):
    def run(option: str) -> int:
        (cli / "exp.toml").write_text('[models]\na = "test_cli_options:net"\nb = "test_cli_options:net"\n'
                                      '[compare]\nprobe = "probe.npy"\nprovider_a = "numpy-scaled"\n'
                                      f'provider_b = "numpy-scaled"\noption_b = [{option!r}]\n')
        return main(["run", str(cli / "exp.toml"), "--quiet"])

    assert run("scale=3") == 0
    assert "score A->B" in capsys.readouterr().out
    assert run("colour=red") == 2
    assert "provider 'numpy-scaled' has no option(s) colour" in capsys.readouterr().err
    assert main(["run", "--keys"]) == 0
    assert "option_b" in capsys.readouterr().out
