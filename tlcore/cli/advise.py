"""``tl advise`` and ``tl compare``: argument parsing and printing; the work is in :mod:`tlcore.advise`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tlcore.advice import defaults
from tlcore.cli import common

ADVISE_EPILOG = f"""\
candidates: comma-separated backbone[@weights]; weights is default, hub, none (from scratch) or a file.
  default: {",".join(defaults.OFFLINE_CANDIDATES)}
  (the offline ImageNet Lite models and a from-scratch control), plus {" and ".join(defaults.HUB_CANDIDATES)} when the
  model hub answers.

what it measures, per candidate, on one stratified subsample of train (--budget-images):
  LogME            log evidence of a Bayesian linear model on the frozen features (You et al. 2021)
  linear probe     cross-validated logistic regression accuracy ± standard error
  kNN probe        cross-validated 20-nearest-neighbour (cosine) accuracy
  similarity       1 - BatchNorm-statistics shift / that of noise images (1 = like the pretraining data)
  ImageNet head    what the pretrained 1000-class head makes of the images (confidence, top class)
  cost             parameters, GFLOPs per image, measured images/s and training memory on this machine
then recommends a backbone and a technique by explicit rules (docs/advise.md), printing their inputs.

examples:
  tl advise --data ../shared/datasets/beans
  tl advise --data DIR --candidates tf_efficientnet_lite0,resnet50@hub --budget-images 500 --budget-minutes 20
"""

COMPARE_EPILOG = f"""\
methods (each run on the same stratified, nested label subsets of train; val and test are the full splits):
  scratch             the preset's architecture with weights=none and the preset's fine-tuning schedule
  feature-extraction  frozen pretrained backbone + logistic-regression head (the feature-extraction preset)
  fine-tuning         the preset itself (its strategy, e.g. LP-FT)
every run starts with a cold feature cache, so wall-clock times are what a first run costs.

defaults: --fractions {",".join(map(str, defaults.FRACTIONS))}, --repeats {defaults.REPEATS},
the preset's epochs and image size, all of train.
On 2 CPU cores, keep it affordable with --epochs, --image-size, --max-train and --methods: beans with
--epochs 3 --image-size 128 --max-train 600 (15 runs) took 35 min on a busy 2-core machine.

examples:
  tl compare --preset fine-tuning --data ../shared/datasets/beans --epochs 3 --image-size 128 --max-train 600
  tl compare --preset fine-tuning --data DIR --fractions 0.1,1.0 --repeats 3 --methods scratch,fine-tuning
"""


def _default_output(kind: str, data: str) -> Path:
    return Path("runs") / f"{kind}-{Path(str(data)).name or 'data'}"


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """``--set KEY=VALUE`` as the settings the library's option builders take."""
    from tlcore.config import parse_overrides

    return parse_overrides(args.set or [])


def cmd_advise(args: argparse.Namespace) -> int:
    from tlcore.advice.advisor import advise, advise_inputs, write_json
    from tlcore.advice.report import print_advice
    from tlcore.runtime import console

    host = common.host()
    inputs = advise_inputs(
        host,
        candidates=args.candidates,
        budget_images=args.budget_images,
        budget_minutes=args.budget_minutes,
        folds=args.folds,
        similarity_images=args.similarity_images,
        image_size=args.image_size,
        settings=_settings(args),
        progress=False if args.quiet else None,
    )
    report = advise(host, args.data, *inputs)
    path = write_json(report, Path(args.output or _default_output("advise", args.data)))
    print_advice(report, console)
    console.print(f"written to {path} ({report['seconds']:.0f} s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.table import Table

    from tlcore.advice.compare import compare, compare_options
    from tlcore.advice.plots import PLOTS
    from tlcore.reports.run_outputs import SKIPPED_OUTPUTS
    from tlcore.runtime import console

    host = common.host()
    options = compare_options(
        fractions=args.fractions,
        repeats=args.repeats,
        methods=args.methods,
        epochs=args.epochs,
        image_size=args.image_size,
        max_train=args.max_train,
        keep_runs=args.keep_runs,
        settings=_settings(args),
        progress=False if args.quiet else None,
    )
    output = Path(args.output or _default_output("compare", args.data))
    result = compare(host, args.preset, args.data, output, options, log=console.print)
    table = Table("method", "fraction", "labelled", "runs", "test accuracy", "wall clock s", title="tl compare")
    for c in result["curves"]:
        spread = f" ± {c['test_accuracy_std']:.3f}" if c["runs"] > 1 else ""
        table.add_row(
            c["method"],
            f"{c['fraction']:.0%}",
            str(c["labelled_images"]),
            str(c["runs"]),
            f"{c['test_accuracy_mean']:.3f}{spread}",
            f"{c['wall_clock_s_mean']:.0f}",
        )
    console.print(table)
    console.print(result["summary"]["text"])
    files = ["compare.json", "compare.csv", *([] if SKIPPED_OUTPUTS in result else PLOTS)]
    console.print(f"written to {output} ({', '.join(files)}; {result['seconds'] / 60:.1f} min)")
    return 0


def add_commands(sub: Any) -> None:
    """Add ``advise`` and ``compare`` to the ``tl`` subcommand parser ``sub``."""
    p = sub.add_parser(
        "advise",
        help="which backbone, and feature extraction or fine-tuning? scores candidates on your data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Score candidate backbones on your data without training them (LogME, probes, domain "
        "similarity, cost), then recommend a backbone and a technique with the reasons. Writes advise.json.",
        epilog=ADVISE_EPILOG,
    )
    p.add_argument("--data", required=True, help="image folder, CSV manifest, or catalogue dataset name")
    p.add_argument("--candidates", help="comma-separated backbone[@weights] (default: see below)")
    p.add_argument(
        "--budget-images",
        type=int,
        default=defaults.BUDGET_IMAGES,
        help=f"score on a stratified subsample of at most this many train images (default {defaults.BUDGET_IMAGES})",
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=defaults.BUDGET_MINUTES,
        help="compute budget for one fine-tuning run on this machine; over it, feature extraction "
        f"(default {defaults.BUDGET_MINUTES:g})",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=defaults.FOLDS,
        help=f"cross-validation folds of the probes (default {defaults.FOLDS})",
    )
    p.add_argument(
        "--similarity-images",
        type=int,
        default=defaults.SIMILARITY_IMAGES,
        help=f"images for the BatchNorm-statistics similarity pass (default {defaults.SIMILARITY_IMAGES})",
    )
    p.add_argument("--image-size", type=int, help="input size for every candidate (default: each one's own)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="another run setting, e.g. device=cpu")
    p.add_argument("--output", "-o", help="folder for advise.json (default runs/advise-<data>)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser(
        "compare",
        help="learning curves by label fraction: from scratch vs feature extraction vs fine-tuning",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train from scratch, with feature extraction and with a fine-tuning preset on growing "
        "fractions of the labels, and plot test accuracy against labelled images and against wall-clock time. "
        "Writes compare.json, compare.csv, two PNG plots and a summary of the transfer gain at 10% of the labels.",
        epilog=COMPARE_EPILOG,
    )
    p.add_argument("--preset", required=True, help="a fine-tuning preset (tl list presets), e.g. fine-tuning")
    p.add_argument("--data", required=True, help="image folder, CSV manifest, or catalogue dataset name")
    fractions = ",".join(map(str, defaults.FRACTIONS))
    p.add_argument("--fractions", default=fractions, help=f"label fractions of train (default {fractions})")
    p.add_argument(
        "--repeats",
        type=int,
        default=defaults.REPEATS,
        help="subsets (and training seeds) per fraction below 1.0; mean ± std in the outputs "
        f"(default {defaults.REPEATS})",
    )
    p.add_argument("--methods", help="subset of scratch,feature-extraction,fine-tuning (default: all three)")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs for scratch and fine-tuning (default: the preset's)")
    p.add_argument("--image-size", type=int, help="input size for every method (default: the backbone's own)")
    p.add_argument("--max-train", type=int, help="use at most this many train images (stratified) before the fractions")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="another setting for every method, e.g. seed=1")
    p.add_argument("--output", "-o", help="output folder (default runs/compare-<data>)")
    p.add_argument("--keep-runs", action="store_true", help="keep every run directory (models included) under runs/")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_compare)
