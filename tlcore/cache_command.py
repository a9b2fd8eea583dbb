"""``tl cache``: what tlcore keeps on disk (features, decoded images, converted weights), and clearing it.

The decoded-image cache holds a resized copy of every image fine-tuned on, so it can reach gigabytes;
users need to see it and drop it without knowing where it lives.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from tlcore.errors import ConfigError
from tlcore.models.weights import cache_root

#: folder under the cache root -> what it holds
KINDS = {
    "features": "backbone features (feature extraction, LP-FT probes, tl advise)",
    "decoded": "decoded, resized images that fine-tuning reads (one entry per dataset and size)",
    "weights": "pretrained weights converted to timm's layout",
}


def _usage(folder: Path) -> dict[str, Any]:
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []
    return {"path": str(folder), "entries": len(entries), "bytes": sum(p.stat().st_size for p in files)}


def cmd_cache(args: argparse.Namespace) -> int:
    root = cache_root()
    if args.action == "clear":
        kinds = list(KINDS) if args.kind == "all" else [args.kind]
        for kind in kinds:
            folder = root / kind
            freed = _usage(folder)["bytes"]
            shutil.rmtree(folder, ignore_errors=True)
            print(f"cleared {kind}: {freed / 2**20:.1f} MiB ({folder})")
        return 0
    usage = {kind: _usage(root / kind) for kind in KINDS}
    if args.json:
        print(json.dumps({"root": str(root), "kinds": usage}, indent=2))
        return 0
    print(f"tlcore cache: {root}  (set TLCORE_CACHE to move it)")
    for kind, info in usage.items():
        print(f"  {kind:<9} {info['bytes'] / 2**20:>10.1f} MiB  {info['entries']:>5} entries  {KINDS[kind]}")
    print("clear one with: tl cache clear features|decoded|weights|all")
    return 0


def add_cache_command(sub: Any) -> None:
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


def _checked(args: argparse.Namespace) -> int:
    if args.action == "clear" and args.kind is None:
        raise ConfigError("tl cache clear needs a kind", f"use one of: {', '.join([*KINDS, 'all'])}")
    return cmd_cache(args)
