"""``tl stress``: re-score a run's validation images under acquisition changes (see :mod:`tlcore.reports.stress`).

Writes ``stress-SPLIT.json`` (machine-readable) and ``stress-SPLIT.png`` (one bar per change; needs the
``reports`` extra) in the run directory, prints a table, and one warning line per change the model leans on.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tlcore.cli import common


def cmd_stress(args: argparse.Namespace) -> int:
    from tlcore.reports import stress

    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    run_dir = common.run_dir(args.run_dir)
    report, plot = stress.stress_run(common.host(), run_dir, args.data, args.split, names, args.set or [],
                                     show_progress=not args.quiet)  # fmt: skip
    _print_table(report)
    for line in stress.warning_lines(report):
        print(line, file=sys.stderr)
    print(f"wrote {run_dir / f'stress-{args.split}.json'}" + (f" and {plot.name}" if plot is not None else ""))
    return 0


def _print_table(report: dict[str, Any]) -> None:
    from rich.table import Table

    from tlcore.runtime import console

    key = report["metric"]
    table = Table(title=f"{report['split']} split, {key.replace('_', ' ')} clean {report['clean'][key]:.3f}")
    for column in ("change", key.replace("_", " "), "vs clean", "predictions changed", "class hit most"):
        table.add_column(column, justify="left" if column in ("change", "class hit most") else "right")
    for row in report["perturbations"]:
        worst = row.get("worst_class")
        style = "bold red" if row["flagged"] else None
        table.add_row(
            row["name"],
            "-" if row[key] is None else f"{row[key]:.3f}",
            "-" if row["drop"] is None else f"{-row['drop']:+.3f}",
            "-" if row["changed"] is None else f"{row['changed']:.1%}",
            f"{worst['class']} {worst['clean_recall']:.2f}->{worst['recall']:.2f}" if worst else "-",
            style=style,
        )
    console.print(table)


def add_commands(sub: Any) -> None:
    """Add ``stress`` to the ``tl`` subcommand parser ``sub``."""
    from tlcore.reports.stress import CHANGED_WARN, DROP_WARN, RECALL_WARN

    p = sub.add_parser(
        "stress",
        help="re-score a split under acquisition changes (blur, JPEG, exposure, framing) to find shortcut cues",
        description="Score the run on a split (val by default), then again under each acquisition change, "
        "applied to the model's input view. A change that alters many predictions is a cue the model leans on "
        "that a new site, device or export setting may not share: add it to the augmentation or fix the data, "
        "and choose between recipes this way on val, never on test. Writes RUN_DIR/stress-SPLIT.json and "
        f".png; flags a change that costs {DROP_WARN}+ of the headline metric (balanced accuracy; AUC for "
        f"multilabel; R2 for regression), or alters {CHANGED_WARN:.0%}+ of predictions while a class loses "
        f"{RECALL_WARN}+ of its recall. The core's changes: "
        "blur, downscale, sharpen, jpeg, noise, low-/high-contrast, darker, brighter, gamma-0.7/1.4, zoom-in, "
        "zoom-out, narrow, wide, rotate. Plugins add their modality's (`tl list perturbations`); a run includes "
        "those its preset names in stress_perturbations, and --only runs any.",
        epilog="example: tl stress runs/chest --only zoom-in,jpeg,blur",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="the --output of `tl train`")
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument("--split", default="val", help="train, val (default), test, or all")
    p.add_argument(
        "--only",
        metavar="NAMES",
        help="comma-separated changes to run (default: the core's and the run's stress_perturbations)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a data setting")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_stress)
