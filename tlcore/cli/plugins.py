"""``tl plugins``, ``tl plugin new`` and ``tl list``: the installed plugins, a new plugin's skeleton, and what
the registries hold."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tlcore.cli import common
from tlcore.errors import TlcoreError


def cmd_plugins(args: argparse.Namespace) -> int:
    host = common.host()
    for _ in host.registries().values():
        pass  # building every registry runs every hook, so hook failures show up too
    infos = [i.as_dict() for i in host.plugins() if args.all or not i.default]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("plugin", "version", "contract", "status", "hooks", "error / note")
    colours = {"loaded": "green", "failed": "red", "incompatible": "red", "disabled": "yellow"}
    for i in infos:
        status = f"[{colours[i['status']]}]{i['status']}"
        message = escape(i["error"]) if i["error"] else f"[yellow]note: {escape(i['note'])}" if i["note"] else ""
        contract = i["hooks_version"] or "none"
        table.add_row(i["name"], i["version"] or "", contract, status, ", ".join(i["hooks"]), message)
    Console().print(table)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    host = common.host()
    kind = args.kind
    if args.yaml is not None:
        return _preset_yaml(host, kind, args.yaml)
    if kind == "backbones" and args.all:
        import timm

        names = timm.list_models(args.pattern or "*", pretrained=False)
        rows = [{"name": n, "description": "timm model (hub weights)", "plugin": "timm"} for n in names]
    else:
        registry = host.registries()[kind]
        rows = [
            {"name": e.name, "description": _describe(e.item), "plugin": e.plugin}
            for e in registry.matching(args.pattern)
        ]
    common.warn_failed_plugins(host)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "description", "plugin", title=f"{kind} ({len(rows)})")
    for r in rows:
        table.add_row(r["name"], r["description"], _short_plugin(r["plugin"]))
    Console().print(table)
    return 0


def _preset_yaml(host: Any, kind: str, pattern: str) -> int:
    """``tl list presets --yaml NAME``: the one preset named (or matched) as a recipe for ``tl train --config``."""
    from tlcore.recipes import preset_recipe

    if kind != "presets":
        raise TlcoreError(f"--yaml prints a preset as a recipe, not {kind}", "tl list presets --yaml NAME")
    presets = host.presets
    names = [pattern] if pattern in presets else [e.name for e in presets.matching(pattern)]
    if len(names) > 1:
        raise TlcoreError(f"{pattern!r} matches {len(names)} presets ({', '.join(names)})", "name one of them")
    common.warn_failed_plugins(host)
    print(preset_recipe(presets, names[0] if names else pattern), end="")  # none: the unknown-preset error
    return 0


def _short_plugin(name: str) -> str:
    return "tlcore" if name.startswith("tlcore.default_plugins.") else name


def _describe(item: Any) -> str:
    return str(getattr(item, "description", None) or getattr(item, "title", ""))


def cmd_plugin_new(args: argparse.Namespace) -> int:
    from tlcore.scaffold import new_plugin

    target = new_plugin(args.name, args.dir)
    print(f"created {target}: an installable plugin {args.name!r} with one example of every hook")
    print("next:")
    print(f"  pip install -e {target}")
    print(f"  python -m pytest {target / 'tests'}")
    print("  tl plugins")
    print(f"  tl train --preset {args.name}/default --data DIR")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``plugins``, ``plugin`` (``new``) and ``list`` to the ``tl`` subcommand parser ``sub``."""
    p = sub.add_parser("plugins", help="list installed plugins, their versions, hooks and errors")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="include the core's default plugins")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("plugin", help="write a new plugin: tl plugin new NAME [--dir DIR]")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="write an installable plugin skeleton tlcore-NAME/ with one example of every hook",
        description="Write DIR/tlcore-NAME/: pyproject.toml (entry point group tlcore), the package "
        "tlcore_NAME with one example of every hook, tests that run tlcore.testing.check_plugin, and a README.",
    )
    new.add_argument("name", metavar="NAME", help="plugin name: lowercase letters, digits and hyphens (derm)")
    new.add_argument("--dir", default=".", help="folder to create tlcore-NAME/ in (default: the current one)")
    new.set_defaults(func=cmd_plugin_new)

    p = sub.add_parser(
        "list",
        help="list datasets, adapters, backbones, heads, augmentations, presets, perturbations (tl stress) or "
        "loggers (experiment trackers)",
    )
    kinds = ["datasets", "adapters", "backbones", "heads", "augmentations", "presets", "perturbations", "loggers"]
    p.add_argument("kind", choices=kinds)
    p.add_argument("pattern", nargs="?", help="filter: substring or shell pattern (resnet*)")
    p.add_argument("--all", action="store_true", help="backbones: every timm architecture, not just the curated list")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--yaml",
        metavar="PRESET",
        help="presets: print PRESET as a recipe file for tl train --config (its settings, then the others "
        "commented at their defaults): tl list presets --yaml fine-tuning > recipe.yaml",
    )
    p.set_defaults(func=cmd_list)
