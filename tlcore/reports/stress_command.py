"""``tl stress``: re-score a run's validation images under acquisition changes (see :mod:`tlcore.reports.stress`).

Writes ``stress-SPLIT.json`` (machine-readable) and ``stress-SPLIT.png`` (one bar per change) in the run
directory, prints a table, and one warning line per change the model leans on.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from tlcore import io_atomic


def cmd_stress(args: argparse.Namespace) -> int:
    from tlcore.plugins import get_host
    from tlcore.predict import split_inputs
    from tlcore.reports import stress
    from tlcore.runtime import progress

    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    host = get_host()
    scoring = split_inputs(host, Path(args.run_dir), args.data, args.split, args.set or [])
    for line in scoring.warnings:
        print(f"warning: {line}", file=sys.stderr)
    run_dir, records, prepared = Path(args.run_dir), scoring.records, scoring.prepared
    chosen = stress.select(host.perturbations, names, scoring.config.stress_perturbations)
    objective = scoring.predictor.objective
    targets = objective.targets(records)
    results = []
    with progress(not args.quiet) as bar:
        task = bar.add_task(f"stress ({len(records)} {args.split} images)", total=len(chosen) + 1, info="clean")
        clean = scoring.predict()
        bar.advance(task)
        for entry in chosen:
            bar.update(task, info=entry.name)
            outputs = scoring.predict(view=partial(stress.Perturbed, entry=entry))
            results.append((entry, objective.metrics(targets, outputs), outputs))
            bar.advance(task)
        bar.update(task, info="done")
    meta = scoring.predictor.meta
    report = stress.summarise(meta.task, objective.metrics(targets, clean), clean, results)
    report = {"run": str(run_dir), "data": prepared.summary(), "split": args.split, **report}
    io_atomic.write_text(run_dir / f"stress-{args.split}.json", json.dumps(report, indent=2))
    plot = plot_stress(report, run_dir / f"stress-{args.split}.png")
    _print_table(report)
    for line in stress.warning_lines(report):
        print(line, file=sys.stderr)
    print(f"wrote {run_dir / f'stress-{args.split}.json'} and {plot.name}")
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


def plot_stress(report: dict[str, Any], path: Path) -> Path:
    """One horizontal bar per change (the headline metric under it), the clean score as a line; flagged red."""
    from tlcore.reports.plots import _figure, _save

    key = report["metric"]
    rows = [r for r in report["perturbations"] if r[key] is not None]
    fig = _figure(6.5, 0.32 * len(rows) + 1.4)
    ax = fig.add_subplot()
    names = [r["name"] for r in rows][::-1]
    values = [r[key] for r in rows][::-1]
    colours = ["#c0392b" if r["flagged"] else "#2e86c1" for r in rows][::-1]
    ax.barh(names, values, color=colours)
    base = report["clean"][key]
    if base is not None:
        ax.axvline(base, color="black", linestyle="--", linewidth=1, label=f"clean {base:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    shown = [*values, *([base] if base is not None else [])]
    low, high = min(shown) - 0.05, min(1.0, max(shown) + 0.02)
    # balanced accuracy and AUC live in [0, 1]; R² falls below 0 when a change ruins the fit
    ax.set_xlim(low if key == "r2" else max(0.0, low), high)
    ax.set_xlabel(f"{key.replace('_', ' ')} on the {report['split']} split (red: flagged)")
    ax.set_title("Stress test: the same images acquired differently", fontsize=10)
    return _save(fig, path)


def add_stress_command(sub: Any) -> None:
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
