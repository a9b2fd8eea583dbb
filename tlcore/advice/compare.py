"""``tl compare``: learning curves by label fraction for from-scratch, feature extraction and fine-tuning.

The seed's claim made measurable: how much does transfer gain over training from scratch, and
at what cost, when only a fraction of the labels exists? Every run goes through the normal
training engine (:func:`tlcore.training.run.run_training`) on a stratified, nested subset of train;
val and test stay the full splits, so every point is scored on the same images.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tlcore
from tlcore.advice.defaults import FRACTIONS, METHODS, REPEATS
from tlcore.advice.sampling import nested_fractions, stratified_subsample
from tlcore.config import RunConfig, build_config, check_setting, preset_settings
from tlcore.data.prepare import PreparedData, prepare_data
from tlcore.errors import ConfigError, TlcoreError
from tlcore.plugins import PluginHost
from tlcore.reports.run_outputs import SKIPPED_OUTPUTS, plot_skips_unsaid
from tlcore.specs import Record
from tlcore.training.run import run_training

__all__ = [
    "CSV_FIELDS",
    "DEFAULT_FRACTIONS",
    "METHODS",
    "CompareOptions",
    "aggregate",
    "compare",
    "compare_options",
    "method_configs",
    "parse_fractions",
    "parse_methods",
    "summarise",
    "with_train_split",
]

DEFAULT_FRACTIONS = FRACTIONS
#: The label fraction the summary reports the transfer gain at (the nearest one measured otherwise).
SUMMARY_FRACTION = 0.1
CSV_FIELDS = (
    "method",
    "fraction",
    "repeat",
    "labelled_images",
    "test_accuracy",
    "test_balanced_accuracy",
    "test_macro_f1",
    "val_accuracy",
    "wall_clock_s",
    "train_s",
    "epochs",
)


@dataclass
class CompareOptions:
    """What :func:`compare` trains: fractions, repeats, methods, schedule, the cap on train, settings."""

    fractions: Sequence[float] = DEFAULT_FRACTIONS
    repeats: int = REPEATS
    methods: Sequence[str] = METHODS
    epochs: int | None = None  # default: the preset's
    max_train: int | None = None  # cap on train before the fractions (stratified)
    seed: int = 0
    keep_runs: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # --set and --image-size, for every method
    progress: bool = True  # the runs' progress bars


def compare_options(
    *,
    fractions: str | Sequence[float] = DEFAULT_FRACTIONS,
    repeats: int = REPEATS,
    methods: str | Sequence[str] | None = None,
    epochs: int | None = None,
    image_size: int | None = None,
    max_train: int | None = None,
    keep_runs: bool = False,
    settings: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> CompareOptions:
    """The options of one ``tl compare`` (and of ``tlcore.compare``). ``settings`` are ``--set`` keys with
    their values, for every method; ``seed`` among them seeds the subsets, and ``progress`` (overridden by
    ``progress`` when that is not None) shows the runs' progress bars. Bad values are the command's
    one-line ConfigError."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1 (got {repeats})", f"the default is {REPEATS}")
    for name, value in (("--epochs", epochs), ("--max-train", max_train)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1 (got {value})", f"leave {name} out for the default")
    overrides = dict(settings or {})
    for key in overrides:
        check_setting(key)
    if image_size is not None:
        overrides["image_size"] = image_size
    shown = bool(overrides.pop("progress", True))
    return CompareOptions(
        fractions=parse_fractions(fractions),
        repeats=repeats,
        methods=parse_methods(methods),
        epochs=epochs,
        max_train=max_train,
        seed=int(overrides.pop("seed", 0)),
        keep_runs=keep_runs,
        overrides=overrides,
        progress=shown if progress is None else progress,
    )


def parse_fractions(text: str | Sequence[float]) -> list[float]:
    """``--fractions``: comma-separated label fractions in (0, 1] (or a list of them), sorted, each once."""
    if not isinstance(text, str):
        text = ",".join(str(v) for v in text)
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConfigError(f"--fractions {text!r} is not a list of numbers", "e.g. --fractions 0.1,0.5,1.0") from None
    if not values or values[0] <= 0 or values[-1] > 1:
        raise ConfigError(f"--fractions {text!r}: every fraction must be in (0, 1]", "e.g. --fractions 0.1,0.5,1.0")
    return values


def parse_methods(text: str | Sequence[str] | None) -> list[str]:
    """``--methods``: a comma-separated subset of :data:`METHODS` (or a list); none: all of them."""
    if text is not None and not isinstance(text, str):
        text = ",".join(text)
    if not text:
        return list(METHODS)
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ConfigError(
            f"--methods: unknown {', '.join(unknown) or 'empty list'}", f"choose from {', '.join(METHODS)}"
        )
    return names


def method_configs(host: PluginHost, preset: str, options: CompareOptions) -> dict[str, RunConfig]:
    """The run configuration of each method: the preset (fine-tuning), the preset from random weights
    (scratch), and the feature-extraction preset on the preset's backbone and weights."""
    settings = preset_settings(host.presets, preset)
    base = build_config(settings, {}, f"preset {preset}")
    if base.technique != "fine-tuning":
        raise ConfigError(
            f"preset {preset!r} does not fine-tune (technique {base.technique})",
            "tl compare needs a fine-tuning preset, e.g. --preset fine-tuning",
        )
    schedule = {"epochs": options.epochs} if options.epochs else {}
    model = {"backbone": base.backbone, "weights": base.weights}
    fe = preset_settings(host.presets, "feature-extraction")
    every = {"seed": options.seed, **options.overrides}
    out = {
        "fine-tuning": build_config(settings, {**schedule, **every}, f"preset {preset}"),
        "scratch": build_config(settings, {**schedule, **every, "weights": "none"}, f"preset {preset}"),
        "feature-extraction": build_config(fe, {**model, **every}, "preset feature-extraction"),
    }
    return {m: out[m] for m in options.methods}


def with_train_split(prepared: PreparedData, train: list[Record]) -> PreparedData:
    dataset = dataclasses.replace(prepared.dataset, splits={**prepared.dataset.splits, "train": train})
    return dataclasses.replace(prepared, dataset=dataset)


def _one_run(
    host: PluginHost,
    config: RunConfig,
    prepared: PreparedData,
    data: str,
    run_dir: Path,
) -> dict[str, Any]:
    """One training run with a cold feature cache (its wall clock is what a first run costs)."""
    # Without matplotlib each run skips its plots; tl compare says so once, for its own plots.
    with tempfile.TemporaryDirectory(prefix="tl-compare-cache-") as cache, plot_skips_unsaid():
        config = config.model_copy(update={"cache_dir": cache})
        # tl compare owns its runs/ folder: a run left there by an earlier compare is replaced.
        return run_training(host, config, data, run_dir, preset=None, prepared=prepared, overwrite=True)


def compare(
    host: PluginHost,
    preset: str,
    data: str,
    output: Path | None,
    options: CompareOptions,
    log: Callable[[str], object] | None = None,
) -> dict[str, Any]:
    """Run every (method, fraction, repeat) and return the content of compare.json; with an ``output``
    folder, also write compare.json, compare.csv, the plots (:data:`~tlcore.advice.plots.PLOTS`) and each
    run's report under ``reports/``. Without one, the runs go to a temporary folder, removed at the end.
    ``log`` gets one line per finished run."""
    if output is None and options.keep_runs:
        raise ConfigError("keep_runs keeps the runs in the output folder", "pass an output folder")
    with contextlib.ExitStack() as stack:
        work = (
            output
            if output is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tl-compare-")))
        )
        return _compare(host, preset, data, work, options, log, write=output is not None)


def _compare(
    host: PluginHost,
    preset: str,
    data: str,
    output: Path,
    options: CompareOptions,
    log: Callable[[str], object] | None,
    write: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    configs = method_configs(host, preset, options)
    first = next(iter(configs.values()))
    prepared = prepare_data(host, data, first)
    if prepared.dataset.task != "classification":
        raise TlcoreError(f"tl compare trains classifiers; this dataset's task is {prepared.dataset.task!r}")
    train = prepared.dataset.splits["train"]
    if options.max_train:
        train = stratified_subsample(train, options.max_train, options.seed)
    plan = []
    for repeat in range(options.repeats):
        subsets = nested_fractions(train, options.fractions, options.seed + repeat)
        for fraction in options.fractions:
            if fraction == 1.0 and repeat > 0:
                continue  # the whole set has no sampling variance to repeat over
            for method in configs:
                plan.append((method, fraction, repeat, subsets[fraction]))
    output.mkdir(parents=True, exist_ok=True)
    runs_root = output / "runs"
    runs: list[dict[str, Any]] = []
    for i, (method, fraction, repeat, subset) in enumerate(plan, 1):
        name = f"{method}-f{fraction:g}-r{repeat}"
        config = configs[method].model_copy(update={"seed": options.seed + repeat, "progress": options.progress})
        run_dir = runs_root / name
        report = _one_run(host, config, with_train_split(prepared, subset), data, run_dir)
        row = {
            "method": method,
            "fraction": fraction,
            "repeat": repeat,
            "labelled_images": len(subset),
            "test_accuracy": report["test"]["accuracy"],
            "test_balanced_accuracy": report["test"]["balanced_accuracy"],
            "test_macro_f1": report["test"]["macro_f1"],
            "val_accuracy": report["val"]["accuracy"],
            "wall_clock_s": round(report["timing"]["total_s"], 1),
            "train_s": round(report["timing"].get("train_s", report["timing"].get("head_fit_s", 0.0)), 1),
            "epochs": report["timing"].get("epochs_run"),
        }
        runs.append(row)
        if log is not None:
            log(
                f"[{i}/{len(plan)}] {method:<18} {fraction:>5.0%} ({len(subset)} images, repeat {repeat}): "
                f"test accuracy {row['test_accuracy']:.3f} in {row['wall_clock_s']:.0f} s"
            )
        if options.keep_runs:
            continue
        if write:
            (output / "reports").mkdir(exist_ok=True)
            shutil.copy(run_dir / "report.json", output / "reports" / f"{name}.json")
        shutil.rmtree(run_dir)
    if not options.keep_runs and runs_root.exists() and not any(runs_root.iterdir()):
        runs_root.rmdir()
    curves = aggregate(runs)
    summary = summarise(curves, len(train))
    result = {
        "tlcore_version": tlcore.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "preset": preset,
        "data": {
            "source": data,
            "classes": prepared.dataset.classes,
            "train_images": len(prepared.dataset.splits["train"]),
            "train_images_used": len(train),
            "val_images": len(prepared.dataset.splits["val"]),
            "test_images": len(prepared.dataset.splits["test"]),
        },
        "options": {
            "fractions": list(options.fractions),
            "repeats": options.repeats,
            "methods": list(configs),
            "epochs": options.epochs,
            "max_train": options.max_train,
            "seed": options.seed,
            "overrides": options.overrides,
        },
        "configs": {m: c.model_dump(exclude={"cache_dir", "progress"}) for m, c in configs.items()},
        "runs": runs,
        "curves": curves,
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if write:
        skipped = _plots_skipped()
        if skipped:  # the same record as a run's report.json
            result[SKIPPED_OUTPUTS] = skipped
        (output / "compare.json").write_text(json.dumps(result, indent=2))
        with (output / "compare.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(runs)
        if not skipped:
            from tlcore.advice.plots import plot_curves

            plot_curves(curves, output, title=f"{Path(data).name}: {preset}")
    return result


def _plots_skipped() -> dict[str, str]:
    """``{"plots": why}`` and one warning when matplotlib (the ``reports`` extra) is missing; else empty."""
    from tlcore.errors import MissingExtraError
    from tlcore.reports.plots import require_matplotlib
    from tlcore.runtime import warn

    try:
        require_matplotlib("drawing tl compare's plots")
    except MissingExtraError as exc:
        warn(f"plots skipped: {exc} (compare.json and compare.csv are written)")
        return {"plots": str(exc)}
    return {}


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over repeats, per method and fraction."""
    keys = sorted({(r["method"], r["fraction"]) for r in runs}, key=lambda k: (METHODS.index(k[0]), k[1]))
    out = []
    for method, fraction in keys:
        rows = [r for r in runs if r["method"] == method and r["fraction"] == fraction]
        acc = [r["test_accuracy"] for r in rows]
        out.append(
            {
                "method": method,
                "fraction": fraction,
                "labelled_images": round(statistics.mean(r["labelled_images"] for r in rows)),
                "runs": len(rows),
                "test_accuracy_mean": round(statistics.mean(acc), 4),
                "test_accuracy_std": round(statistics.stdev(acc), 4) if len(acc) > 1 else 0.0,
                "wall_clock_s_mean": round(statistics.mean(r["wall_clock_s"] for r in rows), 1),
            }
        )
    return out


def summarise(curves: Sequence[dict[str, Any]], train_images: int) -> dict[str, Any]:
    """The transfer gain in points at 10 % of the labels (or the nearest fraction measured), in one paragraph."""
    fractions = sorted({c["fraction"] for c in curves})
    if not fractions:
        return {"fraction": None, "text": "no runs"}
    at = min(fractions, key=lambda f: (abs(f - SUMMARY_FRACTION), f))
    point = {c["method"]: c for c in curves if c["fraction"] == at}
    gains: dict[str, float] = {}
    if "scratch" in point:
        for method in ("fine-tuning", "feature-extraction"):
            if method in point:
                gains[method] = round(
                    100 * (point[method]["test_accuracy_mean"] - point["scratch"]["test_accuracy_mean"]), 1
                )
    n = next(iter(point.values()))["labelled_images"]
    parts = [f"With {at:.0%} of the labels ({n} of {train_images} training images)"]
    accs = [f"{m} reached {c['test_accuracy_mean']:.3f}" for m, c in point.items()]
    parts.append(", ".join(accs) + " test accuracy")
    text = " ".join(parts) + "."
    if gains:
        text += (
            " The transfer gain over training from scratch is "
            + " and ".join(f"{g:+.1f} points for {m}" for m, g in gains.items())
            + "."
        )
    full = {c["method"]: c for c in curves if c["fraction"] == fractions[-1]}
    if "scratch" in full and "fine-tuning" in full and fractions[-1] != at:
        text += (
            f" At {fractions[-1]:.0%} of the labels the gap is "
            f"{100 * (full['fine-tuning']['test_accuracy_mean'] - full['scratch']['test_accuracy_mean']):+.1f} points."
        )
    if at != SUMMARY_FRACTION:
        text += f" ({SUMMARY_FRACTION:.0%} was not among the fractions; {at:.0%} is the nearest.)"
    return {"fraction": at, "labelled_images": n, "gain_points": gains, "text": text}
