"""``tl train``: train a preset on a dataset (or resume a run), print its summary; the settings help."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlcore.cli import common
from tlcore.errors import TlcoreError
from tlcore.metrics.tasks import task_table


def cmd_train(args: argparse.Namespace) -> int:
    from tlcore.training.run import read_run_config, run_training

    host = common.host()
    common.warn_failed_plugins(host)
    recipe: dict[str, Any] | None = None
    folds = [f"folds={args.folds}"] if args.folds is not None else []
    if args.resume:
        if args.overwrite:
            raise TlcoreError("--resume continues a run, --overwrite replaces it", "pass one of them")
        if args.config:
            raise TlcoreError("--resume continues a run with its own settings, --config starts one", "pass one of them")
        run_dir = Path(args.resume)
        saved = read_run_config(run_dir)
        config = common.config(host, None, args.set or [], base=saved["config"])
        data, preset = args.data or saved["data"], saved.get("preset")
    elif args.config:
        config, data, preset, recipe = _recipe(host, args, folds)
        name = preset or Path(args.config).stem
        run_dir = Path(args.output or f"runs/{Path(str(data)).name}-{name.replace('/', '-')}")
    else:
        if not args.preset or not args.data:
            raise TlcoreError(
                "tl train needs --preset and --data (or --config RECIPE, or --resume RUN_DIR)", "see tl train --help"
            )
        config = common.config(host, args.preset, [*(args.set or []), *folds])
        data, preset = args.data, args.preset
        run_dir = Path(args.output or f"runs/{Path(str(data)).name}-{preset.replace('/', '-')}")
    if args.quiet:
        config.progress = False
    if args.strict:
        config.strict = True
    from tlcore.training import distributed

    with distributed.session(config) as dist:  # under torchrun: one process per GPU/worker, rank 0 reports
        report = run_training(
            host, config, data, run_dir, preset, resume=bool(args.resume), overwrite=args.overwrite, recipe=recipe
        )
    if dist.is_main:
        _print_summary(report, run_dir)
    return 0


def _recipe(host: Any, args: argparse.Namespace, folds: list[str]) -> tuple[Any, str, str | None, dict[str, Any]]:
    """``--config``: the run configuration (preset, then recipe, then ``--set``), the data (``--data``, else
    the recipe's), the preset the run records, and the recipe's path and SHA-256."""
    from tlcore.config import parse_overrides
    from tlcore.recipes import load_recipe, recipe_config

    recipe = load_recipe(args.config)
    data = args.data or recipe.data
    if not data:
        raise TlcoreError(f"tl train --config needs --data: recipe {args.config} names no data", "pass --data DIR")
    overrides = parse_overrides([*(args.set or []), *folds])
    config, preset = recipe_config(host.presets, recipe, args.preset, overrides)
    return config, data, preset, recipe.provenance()


def _scores(metrics: dict[str, Any], task: str) -> str:
    values = ((k, metrics.get(k)) for k in task_table(task).summary)
    return ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in values if v is not None)


def _print_summary(report: dict[str, Any], run_dir: Path) -> None:
    test, val = report["test"], report["val"]
    task = report.get("task", {}).get("task", "classification")
    if task == "classification":
        auc = f", auc {test['auc']:.3f}" if test.get("auc") is not None else ""
        scores = (
            f"val accuracy {val['accuracy']:.3f} | test accuracy {test['accuracy']:.3f}, "
            f"balanced {test['balanced_accuracy']:.3f}, macro-F1 {test['macro_f1']:.3f}{auc}"
        )
    else:
        scores = f"{task} | val {_scores(val, task)} | test {_scores(test, task)}"
    print(f"{scores} | {report['timing']['total_s']:.0f} s | weights: {report['model']['weights']['origin']}")
    folds = report.get("folds")
    if folds:  # the CV estimate, then where the ensemble's members are
        cv = folds["cv"]
        spread = ", ".join(f"{k.replace('_', ' ')} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in cv.items()
                           if k in task_table(task).summary)  # fmt: skip
        print(f"{folds['k']}-fold CV (val, mean ± sd over folds): {spread}; test is the {folds['k']}-model ensemble")
        print(f"run written to {run_dir} (report.json, model.json naming the fold runs in {run_dir}/folds)")
        return
    print(f"run written to {run_dir} (report.json, model.safetensors, metrics)")


RECIPE_HELP = """\
recipes (--config FILE): a YAML mapping of `extends: PRESET`, an optional `description:`, and any setting
below, as for --set:
    extends: medical/chest-xray        # the base preset; none: --preset, else fine-tuning
    description: table 2, row 3
    epochs: 8
    augmentation_params: {hflip: true}
  The recipe's settings go over the preset's and --set over the recipe's. --preset with a recipe that names
  a different extends is refused. A run's config.yaml is a recipe: its settings, its preset, and its data
  when --data is not given. tl list presets --yaml NAME prints a preset as a recipe to start from.
  config.yaml and report.json of the run record the recipe's path and SHA-256 (recipe:).
examples:
  tl list presets --yaml medical/chest-xray > recipe.yaml
  tl train --config recipe.yaml --data DIR --output runs/r1 --set epochs=3
  tl train --config runs/r1/config.yaml --data NEW_DIR --output runs/r2"""


def settings_help() -> str:
    from tlcore.config import RunConfig, value_range

    lines = ["settings for --set key=value, and the keys of a recipe (values are YAML):"]
    for name, field in RunConfig.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        bounds = value_range(field)
        about = "; ".join(part for part in (field.description, f"range {bounds}" if bounds else "") if part)
        lines.append(f"  {name:<20} default {default!r:<24} {about}")
    return "\n".join(lines)


def add_commands(sub: Any) -> None:
    """Add ``train`` to the ``tl`` subcommand parser ``sub``."""
    p = sub.add_parser(
        "train",
        help="train a preset on a dataset",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a preset, or a recipe file (--config). The run directory receives config.yaml, "
        "metrics.csv, model.safetensors + model.json and report.json.",
        epilog=f"{RECIPE_HELP}\n\n{settings_help()}",
    )
    p.add_argument("--preset", help="preset name (tl list presets): feature-extraction, fine-tuning, or a plugin's")
    p.add_argument(
        "--config",
        metavar="RECIPE.yaml",
        help="train the settings of a recipe file: extends (a preset), then any key below; a run's own "
        "config.yaml trains that run's settings again (see recipes below)",
    )
    p.add_argument("--data", help="image folder, CSV manifest, or catalogue dataset name (tl list datasets)")
    p.add_argument("--output", "-o", help="run directory (default runs/<data>-<preset>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted fine-tuning run")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in --output (its files are removed first; a folder that holds other files is refused)",
    )
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="grouped K-fold cross-validation on train+val (patients never split): K fold runs under "
        "RUN/folds/, the CV score with its spread in report.json, and the K models used as one ensemble by "
        "predict, evaluate, stress and export (same as --set folds=K)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail if a group or a (near-)duplicate image is in two splits, a split lacks a class, or loading "
        "the data left out, merged or de-duplicated anything (rows, folders, labels)",
    )
    p.set_defaults(func=cmd_train)
