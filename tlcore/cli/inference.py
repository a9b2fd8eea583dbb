"""``tl evaluate``, ``tl predict`` and ``tl extract``: a trained run (or a backbone) applied to images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tlcore import io_atomic
from tlcore.cli import common
from tlcore.metrics.tasks import task_table

ADAPT_BN_HELP = (
    "images from another site (scanner, hospital, camera): first re-estimate the BatchNorm statistics on "
    "these images (AdaBN; no labels read, no weight trained; needs at least 16 images)"
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tlcore.predict import evaluate_run

    evaluation = evaluate_run(common.host(), Path(args.run_dir), args.data, args.split, args.set or [],
                              args.adapt_bn, args.strict)  # fmt: skip
    metrics = evaluation.metrics
    print(json.dumps({k: metrics.get(k) for k in ("n", *task_table(evaluation.task).summary)}))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tlcore.predict import Predictor, results
    from tlcore.runtime import warn

    host = common.host()
    predictor = Predictor.load(host, common.run_dir(args.run_dir))
    inputs, warning = predictor.read_files(host, args.images)
    if warning:
        warn(warning)
    outputs = predictor.predict(inputs.items, inputs.reader, adapt_bn=args.adapt_bn)
    for item, result in zip(inputs.items, results(predictor.meta, outputs), strict=True):
        print(json.dumps({"image": item, **_json_line(result, args.top_k)}))
    return 0


def _json_line(result: dict[str, Any], top_k: int) -> dict[str, Any]:
    """Classification: the top-k classes; multilabel: every label's probability and the labels predicted;
    regression: values in the targets' units."""
    if "values" in result:
        return result
    probabilities = {name: round(p, 6) for name, p in result["probabilities"].items()}
    if "labels" in result:
        return {"probabilities": probabilities, "labels": result["labels"]}
    top = sorted(result["probabilities"], key=result["probabilities"].__getitem__, reverse=True)[:top_k]
    return {"predictions": [{"label": name, "probability": probabilities[name]} for name in top]}


def cmd_extract(args: argparse.Namespace) -> int:
    import numpy as np

    from tlcore.data.prepare import prepare_data
    from tlcore.training.pipeline import Pipeline

    host = common.host()
    config = common.config(host, "feature-extraction", args.set or [])
    pipe = Pipeline(host, config, prepare_data(host, args.data, config))
    arrays: dict[str, Any] = pipe.feature_arrays()
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


def add_commands(sub: Any) -> None:
    """Add ``evaluate``, ``predict`` and ``extract`` to the ``tl`` subcommand parser ``sub``."""
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
