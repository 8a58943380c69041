"""The ``neurocorr`` command line: a frame around the commands plugins offer.

Every subcommand, the core's own included, comes from the ``neurocorr_commands`` hook (the
core's are in :mod:`neurocorr_core.commands`, offered by the built-in plugin). This module only
builds the parser from them, hands each its arguments and turns errors into one line.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .errors import NeurocorrError
from .interfaces import Command
from .plugins import BLOCK_ENV, PluginManager, get_plugin_manager

#: Exit statuses beside 0 (done) and 2 (a user error): 128 + the signal, as a shell reports it.
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
#: How the usage and argparse's errors name the subcommand.
_COMMAND = "COMMAND"
#: The commands of the project's own plugin packages, with the package and its entry point:
#: a missing one names what to install (the core imports none of them).
PACKAGE_COMMANDS = {
    "atlas": ("neurocorr-atlas", "atlas"), "grid": ("neurocorr-atlas", "atlas"),
    "predict": ("neurocorr-atlas", "atlas"), "demo": ("neurocorr-torch", "torch"),
    "reproduce": ("neurocorr-paper", "paper"), "cache": ("neurocorr-scale", "scale"),
    "extract": ("neurocorr-arrays", "arrays"), "data": ("neurocorr-data", "data"),
}
#: Options whose value names a plugin, by destination (``provider_a`` too): their help lists the
#: names installed here, from the plugin manager (no framework is imported for it).
PLUGGABLE = {"metric": "metric", "matching": "matching", "provider": "provider", "executor": "executor"}
#: What ``neurocorr --help`` ends with: the first commands of a new user.
EXAMPLES = """examples:
  neurocorr demo                                   # train six small models on real digits, compare them
  neurocorr layers trusted.pt --probe digits       # the layers a comparison can choose from
  neurocorr compare trusted.pt retrained.pt --probe digits --report report.html
  neurocorr COMMAND --help                         # a command's options and examples
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A user error is one line on stderr (exit 2); Ctrl-C is one line (exit
    130; outputs are written atomically, so nothing is half-written); a reader of standard
    output that went away (``| head -1``) ends the command quietly (exit 141)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe fails here, inside the handlers, not at exit
        return code
    except NeurocorrError as exc:
        print(f"neurocorr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurocorr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python's recipe: point stdout at devnull, so that the flush at exit does not fail again
        with contextlib.suppress(OSError):  # (a stdout without a file descriptor has nothing to flush)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def run() -> NoReturn:
    """The console script: :func:`main` in a process of its own (tests call main in theirs)."""
    gc.freeze()  # modules live to the end: no full collection need rescan them (40-55 ms each with torch)
    code = main()
    gc.freeze()  # the collection at exit would scan everything only to free it with the process
    sys.exit(code)


def _dispatch(argv: list[str]) -> int:
    """A command that reads its own arguments gets everything after its name; the others get
    what the parser made of theirs."""
    pm = get_plugin_manager()
    commands = _commands(pm)
    if argv and argv[0] not in commands and argv[0] in PACKAGE_COMMANDS:
        raise NeurocorrError(_missing_package(pm, argv[0]))
    chosen = commands.get(argv[0]) if argv else None
    if chosen is not None and not chosen.parsed:
        return int(chosen.run_argv(argv[1:]) or 0)
    args = _parser(commands).parse_args(argv)
    return int(args.neurocorr_command.run(args) or 0)


class _Parser(argparse.ArgumentParser):
    """A usage error is one ``neurocorr: error:`` line like every other error (argparse prints
    the whole usage first and names the subcommand); ``--help`` shows the usage. ``hint`` ends
    an error about the COMMAND: a missing command may belong to a plugin that did not load."""

    hint = ""

    def error(self, message: str) -> NoReturn:
        hint = self.hint if _COMMAND in message else ""
        raise NeurocorrError(f"{message}; see '{self.prog} --help'{hint}")


def _commands(pm: PluginManager) -> dict[str, Command]:
    return {cls.name: cls() for cls in pm.commands()}


def _parser(commands: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    """The whole ``neurocorr`` parser: one subparser per command of the plugin manager."""
    pm = get_plugin_manager()
    commands = _commands(pm) if commands is None else commands
    parser = _Parser(prog="neurocorr", description="Compare neural networks by "
                     "what their neurons do (Pearson, Spearman, CKA).", epilog=EXAMPLES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    parser.hint = _not_loaded(pm)
    sub = parser.add_subparsers(required=True, metavar=_COMMAND)
    for name, command in commands.items():
        if command.parsed:
            p = sub.add_parser(name, help=command.help, description=_capital(command.help),
                               epilog=examples_epilog(command), formatter_class=argparse.RawDescriptionHelpFormatter)
            command.configure(p)
            list_installed(p, pm)
        else:  # listed for --help; main() hands it its arguments before any parsing
            p = sub.add_parser(name, help=command.help, add_help=False)
            p.add_argument("args", nargs=argparse.REMAINDER, help=f"see 'neurocorr {name} --help'")
        p.set_defaults(neurocorr_command=command)  # a name no command's own argument takes
    return parser


def version_text() -> str:
    """``neurocorr --version``: the core's version (``neurocorr plugins`` lists the plugins')."""
    try:
        core = importlib.metadata.version("neurocorr-core")
    except importlib.metadata.PackageNotFoundError:
        core = "0+unknown"
    return f"neurocorr {core} (Python {sys.version.split()[0]}); plugin versions: neurocorr plugins"


def examples_epilog(command: Command) -> str | None:
    """A command's ``examples`` (a class attribute: command lines, ``#`` comments) as its epilog."""
    text = command.examples.strip("\n")
    if not text:
        return None
    return "examples:\n" + "\n".join(f"  {line.strip()}" for line in text.splitlines() if line.strip())


def list_installed(parser: argparse.ArgumentParser, pm: PluginManager) -> None:
    """Append the installed names to the help of every option that names a plugin (--metric,
    --matching, --provider-a, --executor, ...), at every level of sub-actions (``atlas add``)."""
    for action in parser._actions:  # argparse has no public way to reach an option's help
        role = PLUGGABLE.get(action.dest.removesuffix("_a").removesuffix("_b"))
        if role and action.option_strings and action.help:
            action.help = f"{action.help}; installed: {', '.join(pm.names(role)) or 'none'}"
        for sub in getattr(action, "choices", None) or {}:
            if isinstance(action.choices, dict) and isinstance(action.choices[sub], argparse.ArgumentParser):
                list_installed(action.choices[sub], pm)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:] + ("." if text and not text.endswith(".") else "")


def _missing_package(pm: PluginManager, name: str) -> str:
    package, entry = PACKAGE_COMMANDS[name]
    info = pm.info.get(entry)
    said = f"{name!r} is a command of the {package} package, which"
    if info is None:
        return (f"{said} is not installed: pip install {package} (from a checkout: pip install -e "
                f"plugins/{package})")
    if info.status == "blocked":
        return f"{said} is disabled: {BLOCK_ENV} lists {entry}"
    return f"{said} did not load ({(info.reason.splitlines() or [''])[0]}); reinstall it: pip install -U {package}"


def _not_loaded(pm: PluginManager) -> str:
    """The plugins that did not load, with why: a command the user expected may be theirs."""
    missing = [f"{i.name} ({(i.reason.splitlines() or [''])[0]})" for i in pm.plugins() if i.status != "ok"]
    if not missing:
        return ""
    return f"; plugins not loaded (their commands are missing): {'; '.join(missing)}"


if __name__ == "__main__":
    run()
