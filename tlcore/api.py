"""The Python API: train a preset, open a run, predict and evaluate, ask which backbone and technique to
use and measure the transfer gain, from a notebook or a script.

A thin layer over the library code the ``tl`` commands call: the same configuration checks, training,
prediction path, evaluation file, advice and learning curves, so a number seen here is the number ``tl``
shows. Errors are
:class:`tlcore.errors.TlcoreError` (one line and a hint, as the CLI prints them); what ``tl`` prints as
``warning: ...`` arrives as a :class:`tlcore.errors.TlcoreWarning`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import numpy as np
import pandas as pd
from PIL import Image

from tlcore import io_atomic
from tlcore.advice.defaults import BUDGET_IMAGES, BUDGET_MINUTES, FOLDS, FRACTIONS, REPEATS, SIMILARITY_IMAGES
from tlcore.advice.recommend import Recommendation
from tlcore.errors import DataError, TlcoreError
from tlcore.recipes import DEFAULT_PRESET
from tlcore.run_dirs import REPORT, existing_run_dir, read_run_settings

if TYPE_CHECKING:
    from torch import nn

    from tlcore.models.transfer import ModelMeta
    from tlcore.plugins import PluginHost
    from tlcore.predict import Predictor, Reader
    from tlcore.reports.export import Format

__all__ = [
    "Advice",
    "Comparison",
    "DataInput",
    "ImageInput",
    "Recommendation",
    "Run",
    "advise",
    "compare",
    "load",
    "train",
    "write_manifest",
]

#: What ``data`` may be: a folder, a CSV manifest, a catalogue name, or a table with ``path`` and ``label``.
DataInput: TypeAlias = "str | os.PathLike[str] | pd.DataFrame"
#: One image for :meth:`Run.predict`: a file, a folder of them, or pixels (``HxW`` or ``HxWxC``).
ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | np.ndarray"
#: The columns a DataFrame given as ``data`` may have (those of the CSV manifest adapter).
FRAME_COLUMNS = ("path", "label", "split", "group")


def train(
    data: DataInput | None,
    preset: str | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> Run:
    """Train ``preset`` (default ``fine-tuning``) on ``data`` into the run folder ``output`` and return the
    finished run.

    ``settings`` are ``tl train --set`` keys with Python values (``epochs=3``,
    ``augmentation_params={"hflip": True}``), checked as ``--set`` checks them. ``config`` is a recipe, as
    ``tl train --config`` takes it: a YAML file (a run's ``config.yaml`` too) or a mapping of the same keys;
    ``preset=None`` is then the recipe's ``extends``, and ``settings`` go over the recipe's; ``data=None``
    is the recipe's ``data``. ``output=None`` is a new folder ``runs/<preset>-<UTC time>`` under the current
    directory. ``resume=True`` continues the interrupted run in ``output`` with its own preset (``data=None``:
    its own data)."""
    from tlcore.config import resolve_config
    from tlcore.training import distributed
    from tlcore.training.run import read_run_config, run_training

    host = _host()
    recipe: dict[str, Any] | None = None
    if resume:
        if overwrite:
            raise TlcoreError("resume continues a run, overwrite replaces it", "pass one of them")
        if config is not None:
            raise TlcoreError("resume continues a run with its own settings, config starts one", "pass one of them")
        if output is None:
            raise TlcoreError("resume=True needs the run to continue", "pass its folder as output")
        run_dir = Path(output)
        saved = read_run_config(run_dir)
        source, settings = _data_source(saved["data"] if data is None else data, settings)
        run_config = resolve_config(host.presets, None, settings, base=saved["config"])
        preset_name = saved.get("preset")
    elif config is not None:
        from tlcore.recipes import load_recipe, recipe_config

        loaded = load_recipe(config)
        data = loaded.data if data is None else data
        if data is None:
            raise TlcoreError("train needs data: the recipe names none", "pass a folder, a CSV manifest or a DataFrame")
        if isinstance(data, pd.DataFrame) and "adapter_options" not in settings:
            settings = {**settings, "adapter_options": loaded.settings.get("adapter_options") or {}}
        source, settings = _data_source(data, settings)
        run_config, preset_name = recipe_config(host.presets, loaded, preset, settings)
        recipe = loaded.provenance()
        run_dir = Path(output) if output is not None else _new_run_dir(preset_name or "recipe")
    else:
        if data is None:
            raise TlcoreError("train needs data", "pass a folder, a CSV manifest, a catalogue name or a DataFrame")
        source, settings = _data_source(data, settings)
        preset_name = preset or DEFAULT_PRESET
        run_config = resolve_config(host.presets, preset_name, settings)
        run_dir = Path(output) if output is not None else _new_run_dir(preset_name)
    run_config.progress = progress
    # under torchrun: one process per GPU, rank 0 writes the run; progress=False: nothing printed either
    with distributed.session(run_config), _console_quiet(not progress):
        run_training(host, run_config, source, run_dir, preset_name, resume=resume, overwrite=overwrite, recipe=recipe)
    return Run(run_dir)


def load(run_dir: str | os.PathLike[str]) -> Run:
    """The finished run in ``run_dir``; a missing, unfinished or untrained one is a TlcoreError."""
    from tlcore.models.transfer import load_meta

    path = existing_run_dir(Path(run_dir))
    load_meta(path)  # the one-line error of every command for an unfinished run or one without a model
    return Run(path)


class Run:
    """A finished training run: its folder, report, settings, per-epoch metrics and model.

    Get one from :func:`train` or :func:`load`. Files are read on first use."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        #: The run folder, absolute: a notebook that changes its working directory still finds it.
        self.dir = Path(run_dir).absolute()

    def __repr__(self) -> str:
        return f"Run({str(self.dir)!r})"

    @cached_property
    def report(self) -> dict[str, Any]:
        """``report.json``: data, model, scores on val and test, timing, environment, settings."""
        path = self.dir / REPORT
        if not path.is_file():
            raise TlcoreError(f"{self.dir} has no {REPORT}: the run did not finish", "use tl train --resume")
        return dict(json.loads(path.read_text(encoding="utf-8")))

    @cached_property
    def config(self) -> dict[str, Any]:
        """The run's resolved settings (every ``--set`` key), as ``config.yaml`` records them."""
        return dict(read_run_settings(self.dir).get("config") or self.report["config"])

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per epoch (``metrics.csv``); a feature-extraction run: its head's training history."""
        path = self.dir / "metrics.csv"
        if path.is_file():
            return pd.read_csv(path)
        return pd.DataFrame(self.report.get("training", {}).get("head_history") or [])

    @property
    def model(self) -> nn.Module:
        """The trained model (backbone and head; a fold ensemble as one module), in eval mode."""
        return self._predictor.model

    @cached_property
    def _predictor(self) -> Predictor:
        from tlcore.predict import Predictor

        return Predictor.load(_host(), self.dir)

    def predict(self, inputs: ImageInput | Sequence[ImageInput], adapt_bn: bool = False) -> pd.DataFrame:
        """One row per image: classification ``label`` (the top class) and one probability column per
        class; multilabel one probability column per label and ``labels`` (those at or above 0.5);
        regression one column per target, in its units.

        ``inputs``: a file, a folder, a PIL image, a NumPy array (``HxW`` or ``HxWxC``, uint8, or float in
        0-1 or 0-255 for an 8-bit model; ``NxHxWxC`` is N images) or a list of these. Rows are indexed by
        path (a volume's slices as ``VOLUME::SLICE``) or ``image-0``, ``image-1``, ... for images in memory.
        ``adapt_bn`` first re-estimates the BatchNorm statistics on these images (on a fresh copy of the
        model; at least 16 images)."""
        from tlcore.predict import Predictor, results

        host = _host()
        predictor = Predictor.load(host, self.dir) if adapt_bn else self._predictor
        items, reader = _prediction_items(host, predictor, inputs)
        outputs = predictor.predict(items, reader, adapt_bn=adapt_bn)
        return _table(predictor.meta, items, results(predictor.meta, outputs))

    def evaluate(
        self, data: DataInput | None = None, split: str = "test", adapt_bn: bool = False, strict: bool = False
    ) -> dict[str, Any]:
        """Score ``split`` of ``data`` (default: the run's own data; ``split="all"``: every image) and return
        the metrics; writes ``evaluation-SPLIT.json`` in the run folder as ``tl evaluate`` does."""
        from tlcore.predict import evaluate_run

        overrides: list[str] = []
        source = None
        if isinstance(data, pd.DataFrame):
            manifest, root = write_manifest(data)
            options = {**(self.config.get("adapter_options") or {}), "image_root": str(root)}
            source = str(manifest)
            overrides.append(f"adapter_options={json.dumps(options)}")  # JSON is YAML, as --set reads it
        elif data is not None:
            source = os.fspath(data)
        return evaluate_run(_host(), self.dir, source, split, overrides, adapt_bn, strict).metrics

    def html_report(self, output: str | os.PathLike[str] | None = None, errors: int = 8) -> Path:
        """``tl report``: one self-contained HTML page (default ``RUN_DIR/report.html``) with the metrics,
        plots and a Grad-CAM gallery of ``errors`` confident test errors; returns its path."""
        from tlcore.reports.html import html_report

        return html_report(_host(), self.dir, _path(output), errors)

    def export(self, format: str = "onnx", output: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """``tl export``: the model as ``onnx`` or ``torchscript`` (default ``RUN_DIR/model.onnx`` or
        ``model.pt``), checked against PyTorch; returns what ``tl export`` prints (path, max abs difference)."""
        from tlcore.reports.export import SUFFIX, export_run

        if format not in SUFFIX:
            raise TlcoreError(f"unknown export format {format!r}", "use onnx or torchscript")
        return export_run(_host(), self.dir, cast("Format", format), _path(output)).as_dict()

    def explain(
        self,
        images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        output: str | os.PathLike[str] | None = None,
        class_name: str | None = None,
    ) -> list[dict[str, Any]]:
        """``tl explain``: a Grad-CAM overlay PNG per image file (default folder ``RUN_DIR/explanations``),
        for ``class_name`` or the predicted class; returns one dict per image (its overlay's path included)."""
        from tlcore.reports.explain import explain_run

        files = [images] if isinstance(images, (str, os.PathLike)) else list(images)
        return explain_run(_host(), self.dir, [os.fspath(f) for f in files], _path(output), class_name)

    def stress(
        self, data: str | os.PathLike[str] | None = None, split: str = "val", only: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """``tl stress``: ``split`` re-scored under acquisition changes (``only`` these); writes
        ``stress-SPLIT.json`` and ``.png`` in the run folder and returns the report."""
        from tlcore.reports.stress import stress_run

        source = os.fspath(data) if data is not None else None
        report, _ = stress_run(_host(), self.dir, source, split, only, show_progress=False)
        return report


def advise(
    data: DataInput,
    *,
    candidates: str | Sequence[str] | None = None,
    budget_images: int = BUDGET_IMAGES,
    budget_minutes: float = BUDGET_MINUTES,
    folds: int = FOLDS,
    similarity_images: int = SIMILARITY_IMAGES,
    image_size: int | None = None,
    output: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **settings: Any,
) -> Advice:
    """``tl advise``: score candidate backbones on ``data`` without training them (LogME, probes, domain
    similarity, cost) and recommend a backbone and a technique.

    The keywords are the command's options, with its defaults; ``candidates`` is ``"a,b@none"`` or a list
    of ``backbone[@weights]`` (``None``: the default list). ``settings`` are ``--set`` keys with Python
    values (``device="cpu"``). ``advise.json`` is written to the folder ``output`` only when one is given.
    A candidate that cannot be scored is a :class:`~tlcore.errors.TlcoreWarning` and an ``error`` row.
    ``progress=False`` prints nothing."""
    from tlcore.advice.advisor import advise as score_candidates
    from tlcore.advice.advisor import advise_inputs, write_json

    host = _host()
    source, settings = _data_source(data, settings)
    inputs = advise_inputs(
        host,
        candidates=candidates,
        budget_images=budget_images,
        budget_minutes=budget_minutes,
        folds=folds,
        similarity_images=similarity_images,
        image_size=image_size,
        settings=settings,
        progress=progress,
    )
    with _console_quiet(not progress):
        report = score_candidates(host, source, *inputs)
    path = write_json(report, Path(output)) if output is not None else None
    return Advice(report, path)


def compare(
    data: DataInput,
    preset: str = DEFAULT_PRESET,
    *,
    fractions: str | Sequence[float] = FRACTIONS,
    repeats: int = REPEATS,
    methods: str | Sequence[str] | None = None,
    epochs: int | None = None,
    image_size: int | None = None,
    max_train: int | None = None,
    output: str | os.PathLike[str] | None = None,
    keep_runs: bool = False,
    progress: bool = True,
    **settings: Any,
) -> Comparison:
    """``tl compare``: train from scratch, with feature extraction and with the fine-tuning ``preset`` on
    nested fractions of train's labels, and return the learning curves and the transfer gain.

    The keywords are the command's options, with its defaults; ``fractions`` and ``methods`` are lists or
    the command's comma-separated text. ``settings`` are ``--set`` keys with Python values, for every method
    (``seed`` also seeds the subsets). With ``output``, the files of ``tl compare`` are written there
    (``compare.json``, ``compare.csv``, the two plots, each run's report); without, nothing is kept.
    ``progress`` shows the progress bars and a line per finished run; ``progress=False`` prints nothing."""
    from tlcore.advice.compare import compare as learning_curves
    from tlcore.advice.compare import compare_options
    from tlcore.runtime import console

    host = _host()
    source, settings = _data_source(data, settings)
    options = compare_options(
        fractions=fractions,
        repeats=repeats,
        methods=methods,
        epochs=epochs,
        image_size=image_size,
        max_train=max_train,
        keep_runs=keep_runs,
        settings=settings,
        progress=progress,
    )
    folder = _path(output)
    with _console_quiet(not progress):
        report = learning_curves(host, preset, source, folder, options, log=console.print)
    return Comparison(report, folder)


class Advice:
    """What :func:`advise` found: the recommendation, one row of scores per candidate, and the report.

    ``report`` is the content of ``advise.json``; ``path`` is that file when :func:`advise` wrote it."""

    #: The columns of :attr:`candidates` taken from each candidate's ``cost`` in ``advise.json``.
    COST_COLUMNS = (
        "parameters",
        "gflops",
        "input_size",
        "images_per_s",
        "train_images_per_s",
        "train_memory_mb",
        "finetune_minutes_estimate",
        "feature_extraction_minutes_estimate",
    )
    #: The columns of :attr:`candidates`, after its index ``candidate`` (the ``backbone[@weights]`` name).
    COLUMNS = (
        "rank",
        "recommended",
        "backbone",
        "weights",
        "pretrained",
        "logme",
        "linear_probe",
        "linear_probe_std_error",
        "knn_probe",
        "knn_probe_std_error",
        "similarity",
        "bn_shift",
        "imagenet_max_softmax",
        "imagenet_top_class",
        "feature_dim",
        *COST_COLUMNS,
        "seconds",
        "error",
    )

    def __init__(self, report: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> None:
        #: ``advise.json``'s content: data, options, every candidate's scores, the recommendation, timing.
        self.report = dict(report)
        #: The ``advise.json`` written, or None.
        self.path = _path(path)
        #: The backbone and technique chosen, the settings and ``tl train`` command, and the rules' reasons.
        self.recommendation = Recommendation(**self.report["recommendation"])

    def __repr__(self) -> str:
        rec = self.recommendation
        strategy = f", strategy {rec.strategy}" if rec.strategy else ""
        return f"Advice({rec.candidate}, {rec.technique}{strategy})"

    @cached_property
    def candidates(self) -> pd.DataFrame:
        """One row per candidate, indexed by its name, most transferable first (``rank`` 1; a candidate
        that could not be scored last, with its ``error``): the scores and costs of ``tl advise``'s tables."""
        ranking = self.recommendation.ranking
        rows = [_candidate_row(c, ranking, self.recommendation.candidate) for c in self.report["candidates"]]
        rows.sort(key=lambda r: r["rank"] if r["rank"] is not None else len(rows) + 1)
        frame = pd.DataFrame(rows, columns=["candidate", *self.COLUMNS]).set_index("candidate")
        frame["rank"] = frame["rank"].astype("Int64")
        return frame


class Comparison:
    """What :func:`compare` measured: learning curves per method and label fraction, every run, the
    transfer-gain summary and the report.

    ``report`` is the content of ``compare.json``; ``path`` the folder written to (None: none)."""

    def __init__(self, report: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> None:
        from tlcore.advice.plots import PLOTS
        from tlcore.reports.run_outputs import SKIPPED_OUTPUTS

        #: ``compare.json``'s content: data, options, each method's settings, runs, curves, summary.
        self.report = dict(report)
        #: The output folder, or None when nothing was written.
        self.path = _path(path)
        #: The transfer gain at 10 % of the labels (or the nearest fraction): ``fraction``,
        #: ``labelled_images``, ``gain_points`` per method, and ``text``, the paragraph ``tl compare`` prints.
        self.summary: dict[str, Any] = dict(self.report["summary"])
        #: The two PNG plots written (accuracy against labelled images, and against wall-clock time); none
        #: without an output folder, or without matplotlib (the ``reports`` extra).
        self.plots: list[Path] = (
            [self.path / name for name in PLOTS] if self.path is not None and SKIPPED_OUTPUTS not in report else []
        )

    def __repr__(self) -> str:
        return f"Comparison({len(self.report['runs'])} runs, {self.summary['text']!r})"

    @cached_property
    def curves(self) -> pd.DataFrame:
        """One row per method and fraction (``compare.json``'s ``curves``): ``method``, ``fraction``,
        ``labelled_images``, ``runs`` (repeats), ``test_accuracy_mean``, ``test_accuracy_std``,
        ``wall_clock_s_mean``."""
        return pd.DataFrame(self.report["curves"])

    @cached_property
    def runs(self) -> pd.DataFrame:
        """One row per run, the columns of ``compare.csv``: method, fraction, repeat, labelled images, test
        accuracy, balanced accuracy and macro F1, val accuracy, wall-clock and training seconds, epochs."""
        from tlcore.advice.compare import CSV_FIELDS

        return pd.DataFrame(self.report["runs"], columns=list(CSV_FIELDS))


# -- helpers ----------------------------------------------------------------------------------------


def _candidate_row(scores: Mapping[str, Any], ranking: Sequence[str], chosen: str) -> dict[str, Any]:
    """One candidate of ``advise.json`` as a flat row of :attr:`Advice.candidates`."""
    name = scores["name"]
    backbone, _, weights = name.partition("@")
    linear = scores.get("linear_probe") or {}
    knn = scores.get("knn_probe") or {}
    similarity = scores.get("similarity") or {}
    head = similarity.get("imagenet_head") or {}
    cost = scores.get("cost") or {}
    top = head.get("top_classes") or [{}]
    return {
        "candidate": name,
        "rank": ranking.index(name) + 1 if name in ranking else None,
        "recommended": name == chosen,
        "backbone": backbone,
        "weights": weights or "default",
        "pretrained": scores.get("pretrained"),
        "logme": scores.get("logme"),
        "linear_probe": linear.get("accuracy"),
        "linear_probe_std_error": linear.get("std_error"),
        "knn_probe": knn.get("accuracy"),
        "knn_probe_std_error": knn.get("std_error"),
        "similarity": similarity.get("score"),
        "bn_shift": similarity.get("bn_shift"),
        "imagenet_max_softmax": head.get("max_softmax"),
        "imagenet_top_class": top[0].get("class"),
        "feature_dim": scores.get("feature_dim"),
        **{key: cost.get(key) for key in Advice.COST_COLUMNS},
        "seconds": scores.get("seconds"),
        "error": scores.get("error"),
    }


def _host() -> PluginHost:
    """The process-wide plugin host; plugins that failed to load are a warning, as in ``tl``."""
    from tlcore.plugins import get_host
    from tlcore.runtime import warn

    host = get_host()
    for info in host.failures():
        warn(f"plugin {info.name!r} failed and was skipped: {info.error}")
    return host


@contextlib.contextmanager
def _console_quiet(quiet: bool) -> Iterator[None]:
    """With ``quiet``, the console prints nothing while the block runs (the status lines the engine prints
    for ``tl``: a run's plots written, one line per run of a comparison); warnings still arrive as
    :class:`tlcore.errors.TlcoreWarning`."""
    from tlcore.runtime import console

    before = console.quiet
    console.quiet = quiet or before
    try:
        yield
    finally:
        console.quiet = before


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return Path(value) if value is not None else None


def _new_run_dir(preset: str) -> Path:
    """``runs/<preset>-<UTC yyyymmdd-HHMMSS>``, with ``-2``, ``-3``, ... when that folder exists."""
    base = Path("runs") / f"{preset.replace('/', '-')}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _data_source(data: DataInput, settings: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """What ``--data`` takes for ``data``, and ``settings`` with what reading it needs: a DataFrame is
    written once as a CSV manifest whose images lie under ``adapter_options.image_root``."""
    if not isinstance(data, pd.DataFrame):
        return os.fspath(data), dict(settings)
    manifest, root = write_manifest(data)
    options = dict(settings.get("adapter_options") or {})
    return str(manifest), {**settings, "adapter_options": {"image_root": str(root), **options}}


def write_manifest(frame: pd.DataFrame) -> tuple[Path, Path]:
    """``frame`` (columns ``path``, ``label``, optional ``split`` and ``group``) as a CSV manifest with
    absolute paths, named by the SHA-256 of its bytes under the cache root; and the folder that holds
    every image (the manifest adapter's ``image_root``)."""
    from tlcore.models.weights import cache_root

    missing = [c for c in FRAME_COLUMNS[:2] if c not in frame.columns]
    if missing:
        columns = ", ".join(map(str, frame.columns))
        raise DataError(
            f"the DataFrame has no {' and no '.join(missing)} column",
            f"name the image and class columns path and label; its columns: {columns}",
        )
    if frame.empty:
        raise DataError("the DataFrame has no rows", "give one row per image")
    table = frame[[c for c in FRAME_COLUMNS if c in frame.columns]].copy()
    table["path"] = [str(Path(os.fspath(p)).expanduser().resolve()) for p in table["path"]]
    content = table.to_csv(index=False).encode("utf-8")
    path = cache_root() / "manifests" / f"{hashlib.sha256(content).hexdigest()}.csv"
    if not path.is_file():  # the same table is the same file: written once
        io_atomic.ensure_dir(path.parent)
        io_atomic.write_bytes(path, content)
    root = Path(os.path.commonpath([str(Path(p).parent) for p in table["path"]]))
    return path, root


def _prediction_items(
    host: PluginHost, predictor: Predictor, inputs: ImageInput | Sequence[ImageInput]
) -> tuple[list[str], Reader]:
    """The items to score, in the order given (a folder: its files), and one reader for all of them:
    files through the run's adapter (``Predictor.read_files``), images in memory as the model's input."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:  # NxHxWxC: a batch of images
        given: list[Any] = list(inputs)
    elif isinstance(inputs, (str, os.PathLike, Image.Image, np.ndarray)):
        given = [inputs]
    else:
        given = list(inputs)
    items: list[str] = []
    readers: dict[str, Reader] = {}
    memory: dict[str, np.ndarray] = {}
    eight_bit = predictor.meta.normalization()[2] != 1.0
    for value in given:
        if isinstance(value, (Image.Image, np.ndarray)):
            name = f"image-{len(memory)}"
            memory[name] = _pixels(value, predictor.meta.in_chans, eight_bit)
            items.append(name)
            continue
        files, warning = predictor.read_files(host, [os.fspath(value)])
        if warning:
            from tlcore.runtime import warn

            warn(warning)
        items.extend(files.items)
        readers.update(dict.fromkeys(files.items, files.reader))

    def read(item: str) -> np.ndarray:
        return memory[item] if item in memory else readers[item](item)

    return items, read


def _pixels(image: Image.Image | np.ndarray, channels: int, eight_bit: bool) -> np.ndarray:
    """An image in memory as a reader returns it: ``HxWxC`` with the run's channels; uint8 for an 8-bit
    model (floats in 0-1 are scaled to 0-255), the values as given for a band model."""
    if isinstance(image, Image.Image):
        if channels in (1, 3):
            image = image.convert("L" if channels == 1 else "RGB")
        image = np.asarray(image)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise DataError(f"an image array has shape {array.shape}", "pass HxW or HxWxC arrays")
    if eight_bit and array.dtype != np.uint8:
        values = array.astype(np.float32)
        if values.size and float(np.nanmax(values)) <= 1.0:
            values = values * 255
        array = np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8)
    have = array.shape[2]
    if have == channels:
        return array
    if channels == 3 and have in (1, 4):  # grey repeated, as decoding a grey file for an RGB model; alpha dropped
        return np.repeat(array, 3, axis=2) if have == 1 else array[:, :, :3]
    if channels == 1 and have in (3, 4) and array.dtype == np.uint8:
        return np.asarray(Image.fromarray(array[:, :, :3]).convert("L"))[:, :, None]
    raise DataError(f"an image with {have} channel(s) for a model of {channels}", f"pass HxWx{channels} arrays")


def _table(meta: ModelMeta, items: list[str], rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-input results as a table: one row per item, the columns of :meth:`Run.predict`."""
    names = list(meta.classes)
    if meta.task == "classification":
        columns, records = ["label", *names], [{"label": r["label"], **r["probabilities"]} for r in rows]
    elif meta.task == "multilabel":
        columns, records = [*names, "labels"], [{**r["probabilities"], "labels": r["labels"]} for r in rows]
    else:
        columns, records = names, [r["values"] for r in rows]
    return pd.DataFrame(records, index=pd.Index(items, name="image"), columns=columns)
