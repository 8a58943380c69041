"""``neurocorr cache``: list or clear the activation cache."""

from __future__ import annotations

import argparse
import time

from neurocorr_core import Command
from neurocorr_core.cli_options import add_json_option, emit_json
from neurocorr_core.tiles import human

from .cache import DIR_ENV, open_cache


class CacheCommand(Command):
    name = "cache"
    help = "list or clear the activation cache"
    examples = """
        neurocorr cache ls                  # entries, sizes, last use (least recently used first)
        neurocorr cache ls --json
        neurocorr cache clear               # delete every entry
    """

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["ls", "clear"], help="ls: list entries; clear: delete them all")
        parser.add_argument("--cache-dir",
                            help=f"cache folder (default ${DIR_ENV} or ~/.cache/neurocorr/activations)")
        add_json_option(parser, "ls: the entries")

    def run(self, args: argparse.Namespace) -> int:
        cache = open_cache(args.cache_dir or True, write=False)  # clear says itself what it cannot delete
        assert cache is not None
        if args.action == "clear":
            print(f"removed {cache.clear()} entries from {cache.root}")
            return 0
        entries = cache.entries()
        if args.json:
            rows = [{"key": e.key, "size": e.size, "used": e.used, **e.meta} for e in entries]
            emit_json(args.json, rows)
            return 0
        total = sum(e.size for e in entries)
        print(f"{cache.root}: {len(entries)} entries, {human(total)} of {human(cache.limit)} "
              f"(least recently used first)")
        if entries:
            print(f"{'key':<12} {'size':>9} {'last used':<19} {'shape':<14} {'view':<8} layer / model / probe")
        for e in entries:
            used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.used))
            shape = "x".join(str(s) for s in e.meta.get("shape") or []) or "?"
            print(f"{e.key[:12]:<12} {human(e.size):>9} {used:<19} {shape:<14} {e.meta.get('view', '?'):<8} "
                  f"{e.meta.get('layer', '?')} / {e.meta.get('model', '?')} / {e.meta.get('probe', '?')}")
        return 0
