"""``tl cache``: the size of each cache tlcore keeps on disk, and clearing one (see :mod:`tlcore.cache`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tlcore.cache import KINDS, clear, usage
from tlcore.errors import ConfigError
from tlcore.models.weights import cache_root


def cmd_cache(args: argparse.Namespace) -> int:
    root = cache_root()
    if args.action == "clear":
        kinds = list(KINDS) if args.kind == "all" else [args.kind]
        for kind in kinds:
            folder = root / kind
            freed = clear(folder)
            print(f"cleared {kind}: {freed / 2**20:.1f} MiB ({folder})")
        return 0
    sizes = {kind: usage(root / kind) for kind in KINDS}
    if args.json:
        print(json.dumps({"root": str(root), "kinds": sizes}, indent=2))
        return 0
    print(f"tlcore cache: {root}  (set TLCORE_CACHE to move it)")
    for kind, info in sizes.items():
        print(f"  {kind:<9} {info['bytes'] / 2**20:>10.1f} MiB  {info['entries']:>5} entries  {KINDS[kind]}")
    print("clear one with: tl cache clear features|decoded|weights|all")
    return 0


def _checked(args: argparse.Namespace) -> int:
    if args.action == "clear" and args.kind is None:
        raise ConfigError("tl cache clear needs a kind", f"use one of: {', '.join([*KINDS, 'all'])}")
    return cmd_cache(args)


def add_commands(sub: Any) -> None:
    """Add ``cache`` to the ``tl`` subcommand parser ``sub``."""
    p = sub.add_parser(
        "cache",
        help="show or clear what tlcore caches on disk (features, decoded images, converted weights)",
        description="Without an action: the size of each cache. `tl cache clear KIND` deletes one "
        "(it is rebuilt when next needed). The root is $TLCORE_CACHE (default ~/.cache/tlcore).",
    )
    p.add_argument("action", nargs="?", choices=["show", "clear"], default="show")
    p.add_argument("kind", nargs="?", choices=[*KINDS, "all"], help="clear: which cache")
    p.add_argument("--json", action="store_true", help="show: machine-readable")
    p.set_defaults(func=_checked)
