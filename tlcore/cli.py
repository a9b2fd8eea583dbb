"""The ``tl`` command line. User errors print one line and exit non-zero; ``--debug`` shows tracebacks."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tlcore
from tlcore import io_atomic
from tlcore.errors import TlcoreError

EXAMPLES = """\
examples:
  tl train --preset feature-extraction --data ../shared/datasets/beans --output runs/beans-fe
  tl train --preset fine-tuning --data ./my_images --output runs/ft --set epochs=5 --set backbone=resnet50
  tl evaluate runs/ft --data ./other_hospital
  tl stress runs/ft           (which acquisition changes - blur, JPEG, framing - flip predictions on val)
  tl predict runs/ft leaf1.jpg leaf2.jpg
  tl report runs/ft          (HTML: metrics, plots, Grad-CAM of errors)   tl explain runs/ft leaf1.jpg
  tl export runs/ft --format onnx
  tl advise --data DIR        (which backbone; feature extraction or fine-tuning?)
  tl compare --preset fine-tuning --data DIR   (learning curves: scratch vs transfer)
  tl list presets            tl list backbones lite        tl plugins
  tl plugin new derm         (an installable plugin skeleton; see docs/plugins/tutorial.md)

data layouts: <root>/<split>/<class>/<image> (splits train, val, test; a missing val/test is carved out
of train with a fixed seed), <root>/<class>/<image>, a CSV manifest, or a name from `tl list datasets`.
"""


def _host() -> Any:
    from tlcore.plugins import get_host

    return get_host()


def _warn_failed_plugins(host: Any) -> None:
    for info in host.failures():
        print(f"warning: plugin {info.name!r} failed and was skipped: {info.error}", file=sys.stderr)


# -- plugins / list -----------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    host = _host()
    for _ in host.registries().values():
        pass  # building every registry runs every hook, so hook failures show up too
    infos = [i.as_dict() for i in host.plugins() if args.all or not i.default]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("plugin", "version", "status", "hooks", "error")
    for i in infos:
        status = {"loaded": "[green]loaded", "failed": "[red]failed", "disabled": "[yellow]disabled"}[i["status"]]
        table.add_row(i["name"], i["version"] or "", status, ", ".join(i["hooks"]), i["error"] or "")
    Console().print(table)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    host = _host()
    kind = args.kind
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
    _warn_failed_plugins(host)
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


# -- train / evaluate / predict / extract --------------------------------------------------------


def _config(host: Any, preset: str | None, overrides: Sequence[str], base: dict[str, Any] | None = None) -> Any:
    from tlcore.config import build_config, parse_overrides, preset_settings

    settings = dict(base or {})
    if preset:
        settings.update(preset_settings(host.presets, preset))
    return build_config(settings, parse_overrides(overrides), f"preset {preset}" if preset else "config")


def cmd_train(args: argparse.Namespace) -> int:
    from tlcore.train.run import read_run_config, run_training

    host = _host()
    _warn_failed_plugins(host)
    if args.resume:
        if args.overwrite:
            raise TlcoreError("--resume continues a run, --overwrite replaces it", "pass one of them")
        run_dir = Path(args.resume)
        saved = read_run_config(run_dir)
        config = _config(host, None, args.set or [], base=saved["config"])
        data, preset = args.data or saved["data"], saved.get("preset")
    else:
        if not args.preset or not args.data:
            raise TlcoreError("tl train needs --preset and --data (or --resume RUN_DIR)", "see tl train --help")
        folds = [f"folds={args.folds}"] if args.folds is not None else []
        config = _config(host, args.preset, [*(args.set or []), *folds])
        data, preset = args.data, args.preset
        run_dir = Path(args.output or f"runs/{Path(str(data)).name}-{preset.replace('/', '-')}")
    if args.quiet:
        config.progress = False
    if args.strict:
        config.strict = True
    from tlcore.train import distributed

    with distributed.session(config) as dist:  # under torchrun: one process per GPU/worker, rank 0 reports
        report = run_training(host, config, data, run_dir, preset, resume=bool(args.resume), overwrite=args.overwrite)
    if dist.is_main:
        _print_summary(report, run_dir)
    return 0


#: The headline metrics per task: what `tl train` and `tl evaluate` print.
SUMMARY_KEYS = {
    "classification": ("accuracy", "balanced_accuracy", "macro_f1", "auc"),
    "multilabel": ("auc", "micro_auc", "map", "macro_f1", "subset_accuracy"),
    "regression": ("rmse", "mae", "r2"),
}


def _scores(metrics: dict[str, Any], task: str) -> str:
    values = ((k, metrics.get(k)) for k in SUMMARY_KEYS.get(task, SUMMARY_KEYS["classification"]))
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
                           if k in SUMMARY_KEYS.get(task, ()))  # fmt: skip
        print(f"{folds['k']}-fold CV (val, mean ± sd over folds): {spread}; test is the {folds['k']}-model ensemble")
        print(f"run written to {run_dir} (report.json, model.json naming the fold runs in {run_dir}/folds)")
        return
    print(f"run written to {run_dir} (report.json, model.safetensors, metrics)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tlcore.predict import split_inputs

    scoring = split_inputs(_host(), Path(args.run_dir), args.data, args.split, args.set or [], args.strict)
    for line in scoring.warnings:
        print(f"warning: {line}", file=sys.stderr)
    outputs = scoring.predict(adapt_bn=args.adapt_bn)
    objective, records = scoring.predictor.objective, scoring.records
    metrics = objective.metrics(objective.targets(records), outputs)
    run_dir = Path(args.run_dir)
    out: dict[str, Any] = {"run": str(run_dir), "data": scoring.prepared.summary(), "split": args.split,
                           "metrics": metrics}  # fmt: skip
    name = f"evaluation-{args.split}.json"
    if args.adapt_bn:
        # Transductive: the split's own images set the statistics. Kept apart from the plain evaluation.
        out["adapted_batchnorm"] = {
            "images": len(records),
            "from": f"the {args.split} split's images",
            "labels_used": False,
        }
        name = f"evaluation-{args.split}-adapted-bn.json"
    io_atomic.write_text(run_dir / name, json.dumps(out, indent=2))
    print(json.dumps({k: metrics.get(k) for k in ("n", *SUMMARY_KEYS.get(scoring.predictor.meta.task, ()))}))
    return 0


ADAPT_BN_HELP = (
    "images from another site (scanner, hospital, camera): first re-estimate the BatchNorm statistics on "
    "these images (AdaBN; no labels read, no weight trained; needs at least 16 images)"
)


def cmd_predict(args: argparse.Namespace) -> int:
    from tlcore.predict import Predictor

    host = _host()
    predictor = Predictor.load(host, Path(args.run_dir))
    inputs, warning = predictor.read_files(host, args.images)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    proba = predictor.predict(inputs.items, inputs.reader, adapt_bn=args.adapt_bn)
    meta = predictor.meta
    if meta.task != "classification":
        for item, row in zip(inputs.items, proba, strict=True):
            print(json.dumps({"image": item, **_task_prediction(meta, row)}))
        return 0
    k = min(args.top_k, len(meta.classes))
    for item, row in zip(inputs.items, proba, strict=True):
        top = row.argsort()[::-1][:k]
        print(
            json.dumps(
                {
                    "image": item,
                    "predictions": [{"label": meta.classes[i], "probability": round(float(row[i]), 6)} for i in top],
                }
            )
        )
    return 0


def _task_prediction(meta: Any, row: Any) -> dict[str, Any]:
    """Multilabel: every label's probability and those at or above 0.5; regression: values in the targets' units."""
    if meta.task == "multilabel":
        probabilities = {label: round(float(p), 6) for label, p in zip(meta.classes, row, strict=True)}
        return {"probabilities": probabilities, "labels": [k for k, p in probabilities.items() if p >= 0.5]}
    return {"values": {name: float(v) for name, v in zip(meta.classes, row, strict=True)}}


def cmd_extract(args: argparse.Namespace) -> int:
    import numpy as np

    from tlcore.data.prepare import prepare_data
    from tlcore.train.run import Pipeline

    host = _host()
    config = _config(host, "feature-extraction", args.set or [])
    prepared = prepare_data(host, args.data, config)
    pipe = Pipeline(host, config, prepared)
    cache = pipe.feature_cache()
    arrays: dict[str, Any] = {"classes": np.array(prepared.dataset.classes)}
    for split, records in prepared.dataset.splits.items():
        out = cache.extract(
            pipe.backbone,
            records,
            pipe.dataset(records),
            pipe.device,
            config.batch_size,
            pipe.workers,
            label=f"features {split}",
            show_progress=config.progress,
        )
        arrays[f"{split}_features"] = out.features
        arrays[f"{split}_targets"] = np.array([r.target for r in records])
        arrays[f"{split}_paths"] = np.array([r.path for r in records])
    output = Path(args.output)
    io_atomic.ensure_dir(output.parent)

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file object: numpy would append .npz to a bare name
            np.savez_compressed(fh, **arrays)

    io_atomic.atomic_write(output, write)
    shapes = {k: list(v.shape) for k, v in arrays.items() if k.endswith("_features")}
    print(
        json.dumps(
            {
                "output": str(output),
                "backbone": pipe.backbone_spec.name,
                "weights": pipe.weights.origin,
                "shapes": shapes,
            }
        )
    )
    return 0


def settings_help() -> str:
    from tlcore.config import RunConfig, value_range

    lines = ["settings for --set key=value (values are YAML):"]
    for name, field in RunConfig.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        bounds = value_range(field)
        about = "; ".join(part for part in (field.description, f"range {bounds}" if bounds else "") if part)
        lines.append(f"  {name:<20} default {default!r:<24} {about}")
    return "\n".join(lines)


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tl",
        description="tlcore: transfer learning for image classification (feature extraction and fine-tuning "
        "of ImageNet-pretrained models), with plugins for medical imaging and agriculture.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="show tlcore and plugin versions")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a preset on a dataset",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a preset recipe. The run directory receives config.yaml, metrics.csv, "
        "model.safetensors + model.json and report.json.",
        epilog=settings_help(),
    )
    p.add_argument("--preset", help="recipe name (tl list presets): feature-extraction, fine-tuning, or a plugin's")
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

    p = sub.add_parser("evaluate", help="evaluate a trained run on a dataset split")
    p.add_argument("run_dir")
    p.add_argument("--data", help="dataset (default: the one it was trained on)")
    p.add_argument(
        "--split",
        default="test",
        help="train, val, test, or all: every image of --data (an external site's <class>/ folders)",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a data setting")
    p.add_argument("--adapt-bn", action="store_true", help=ADAPT_BN_HELP + " (writes evaluation-SPLIT-adapted-bn.json)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail if the images scored include the run's own training images, or the data was changed to load",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="predict images with a trained run (JSON lines: top-k classes, per-label probabilities, or values)",
        description="One JSON line per image. Classification: the top-k classes with probabilities. Multilabel: "
        "every label's probability and the labels at or above 0.5. Regression: values in the targets' units. "
        "Files are read through the adapter the run was trained with when it knows how (a DICOM is windowed, "
        "a NIfTI volume gives one line per slice, as VOLUME::SLICE, and such an address one line), else "
        "decoded like training images; .npy arrays and multi-band TIFFs are read as stored. A folder stands "
        "for the files in it. Scored on the run's device setting (a GPU when there is one).",
    )
    p.add_argument("run_dir")
    p.add_argument("images", nargs="+", help="image files, DICOMs, volumes, or folders of them")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--adapt-bn", action="store_true", help=ADAPT_BN_HELP)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("extract", help="extract backbone features of a dataset to an .npz file (cached)")
    p.add_argument("--data", required=True)
    p.add_argument("--output", "-o", required=True, help="output .npz")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="e.g. backbone=tf_efficientnet_lite2")
    p.set_defaults(func=cmd_extract)

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
        "list", help="list datasets, adapters, backbones, heads, augmentations, presets or perturbations (tl stress)"
    )
    kinds = ["datasets", "adapters", "backbones", "heads", "augmentations", "presets", "perturbations"]
    p.add_argument("kind", choices=kinds)
    p.add_argument("pattern", nargs="?", help="filter: substring or shell pattern (resnet*)")
    p.add_argument("--all", action="store_true", help="backbones: every timm architecture, not just the curated list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    from tlcore.reports.commands import add_report_commands  # explain, report, export

    add_report_commands(sub)

    from tlcore.advise.commands import add_advise_commands  # advise, compare

    add_advise_commands(sub)

    from tlcore.cache_command import add_cache_command

    add_cache_command(sub)

    from tlcore.reports.stress_command import add_stress_command

    add_stress_command(sub)
    return parser


def _versions() -> str:
    from tlcore.plugins import get_host

    lines = [f"tlcore {tlcore.__version__}"]
    for info in get_host().plugins():
        if not info.default:
            lines.append(f"  {info.name} {info.version or '?'} ({info.status})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("TLCORE_DEBUG") == "1"
    try:
        if args.version:
            print(_versions())
            return 0
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args))
    except TlcoreError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tl list ... | head`: the reader left; not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps Python's exit flush quiet
        return 0
    except Exception as exc:
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"error: unexpected {type(exc).__name__}: {first[:300]} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
