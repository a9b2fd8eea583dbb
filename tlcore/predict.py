"""One prediction path: a run's model, and the files it is given, turned into outputs in the user's units.

Training's val and test scores, ``tl evaluate``, ``tl predict``, ``tl stress``, ``tl explain``, ``tl export``'s
check and the report's Grad-CAM gallery all see an image the same way: read by the run's adapter (a DICOM
windowed, a NIfTI volume sliced, bands as stored), then the run's one eval view (:func:`eval_view`: the
core's resize and centre crop at the run's preprocessing, never a plugin's) and normalisation. Those that
score go through :class:`Predictor`: the same batching, test-time mirror, activation, target units and
device and precision (the run's ``precision``, resolved for the device as training resolves it:
tlcore.runtime.resolve_precision) wherever it is called, so a number in ``report.json`` is the
number ``tl evaluate`` prints for the same images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from tlcore import io_atomic
from tlcore.config import RunConfig, build_config, parse_overrides
from tlcore.data.dataset import ImageDataset, as_model_input, read_for_prediction
from tlcore.data.prediction_inputs import prediction_inputs
from tlcore.errors import DataError, NoTrainSplitError, TlcoreError
from tlcore.metrics.multilabel import THRESHOLD
from tlcore.models.backbones import Preprocessing
from tlcore.models.objective import Objective
from tlcore.models.transfer import ModelMeta, TransferModel, load_model
from tlcore.plugins import PluginHost
from tlcore.run_dirs import existing_run_dir, read_run_settings, run_adapter
from tlcore.runtime import (
    autocast,
    loader_options,
    pick_device,
    prepare_model,
    resolve_precision,
    resolve_workers,
    warn,
)
from tlcore.specs import AugmentationContext, PredictionInputs, Record, source_file

if TYPE_CHECKING:
    from tlcore.data.prepare import PreparedData

Reader = Callable[[str], np.ndarray]
#: Wraps the eval view (``tl stress`` perturbs what the model sees): transform -> transform.
View = Callable[[Any], Any]


def eval_view(pre: Preprocessing, channels: int) -> Any:
    """The eval view of every run: resize the short side to ``size / crop_pct``, then centre-crop.

    Derived from the preprocessing alone (recorded in model.json), so any command rebuilds it for any run,
    whichever plugins are installed; an augmentation's eval half must equal it (``check_augmentation``)."""
    from tlcore.data.transforms import eval_transform

    return eval_transform(AugmentationContext(pre.input_size, False, pre.interpolation, pre.crop_pct, channels))


@dataclass(frozen=True)
class InputView:
    """Images as a run's model sees them: the eval view, then the run's normalisation."""

    transform: Any
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float  # 255: 0-1 statistics on uint8 pixels; 1: a band run's statistics in the data's units

    @classmethod
    def of(cls, meta: ModelMeta) -> InputView:
        mean, std, scale = meta.normalization()
        return cls(eval_view(meta.preprocess(), meta.in_chans), meta.in_chans, mean, std, scale)

    def dataset(self, records: Sequence[Record], reader: Reader, view: View | None = None) -> ImageDataset:
        transform = view(self.transform) if view is not None else self.transform
        return ImageDataset(records, reader, transform, self.mean, self.std, self.scale)

    def read(self, reader: Reader, path: str) -> np.ndarray:
        """``path`` read and transformed to the model's input size, ``HxWxC`` (uint8 images, float32 bands)."""
        return np.asarray(self.transform(image=as_model_input(reader(path)))["image"])


def eval_batch_size(config: RunConfig) -> int:
    """Scoring keeps no gradients or optimiser state: twice the training batch fits wherever training did."""
    return config.batch_size * 2


def predict_proba(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    loader: DataLoader[Any],
    device: torch.device,
    tta: bool = False,
    activate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    precision: str = "auto",
) -> np.ndarray:
    """Activated outputs (softmax unless ``activate`` says otherwise; see ``Objective.activate``); with
    ``tta`` averaged with those of the horizontally mirrored batch. Forward passes in ``precision``
    (tlcore.runtime.resolve_precision: ``auto`` is bf16 on recent CUDA GPUs, fp32 on the CPU)."""
    act = activate or (lambda logits: torch.softmax(logits.float(), dim=1))
    resolve_precision(precision, device)  # a device that cannot compute in it fails before the first batch
    if isinstance(model, nn.Module):
        model.eval()
    normalize = cast(ImageDataset, loader.dataset).normalize
    out = []
    with torch.inference_mode():
        for x, _ in loader:
            with autocast(device, precision):
                x = normalize(x, device)
                proba = act(model(x).float())
                if tta:
                    proba = (proba + act(model(torch.flip(x, dims=[3])).float())) / 2
            out.append(proba.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


class Predictor:
    """A trained model (a single run's or a fold ensemble's) and how its run scores inputs.

    ``adapter`` and ``adapter_options``: what read the run's training data, used again for new files;
    ``precision``: the run's setting, resolved for ``device`` (tlcore.runtime.resolve_precision)."""

    def __init__(
        self,
        model: TransferModel,
        meta: ModelMeta,
        device: torch.device | None = None,
        batch_size: int = 64,
        workers: int = 0,
        adapter: str | None = None,
        adapter_options: dict[str, Any] | None = None,
        precision: str = "auto",
    ) -> None:
        self.device = device or torch.device("cpu")
        self.precision = resolve_precision(precision, self.device)  # bf16, fp16 or fp32
        self.model = prepare_model(model, self.device).eval()
        self.meta = meta
        self.objective = Objective.from_meta(meta)
        self.inputs = InputView.of(meta)
        self.batch_size, self.workers = batch_size, workers
        self.adapter, self.adapter_options = adapter, dict(adapter_options or {})

    @classmethod
    def configured(
        cls, model: TransferModel, meta: ModelMeta, config: RunConfig, adapter: str | None = None,
        adapter_options: dict[str, Any] | None = None, device: torch.device | None = None,
    ) -> Predictor:  # fmt: skip
        """Device (unless given), batch size, workers and precision from the run's settings (``device``,
        ``batch_size``, ``num_workers``, ``precision``)."""
        device = device or pick_device(config.device)
        workers = resolve_workers(config.num_workers, device)
        return cls(model, meta, device, eval_batch_size(config), workers, adapter, adapter_options, config.precision)

    @classmethod
    def load(
        cls, host: PluginHost, run_dir: Path, config: RunConfig | None = None, device: torch.device | None = None
    ) -> Predictor:
        """The run in ``run_dir`` (a fold ensemble loads as one model), on its own settings unless ``config``;
        ``device`` overrides the settings' (``tl export`` and ``tl explain`` work on the CPU)."""
        model, meta = load_model(host, run_dir)
        adapter, options = run_adapter(run_dir)
        return cls.configured(model, meta, config or run_config(run_dir), adapter, options, device)

    def predict(
        self, items: Sequence[str], reader: Reader, view: View | None = None, adapt_bn: bool = False
    ) -> np.ndarray:
        """Outputs in the user's units: class or per-label probabilities, or regression values.

        With ``adapt_bn`` the BatchNorm statistics are first re-estimated on these images (their labels are
        never read; the model keeps them afterwards); ``view`` wraps the eval view."""
        ds = self.inputs.dataset([Record(p, 0) for p in items], reader, view)
        loader = DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=False,
            generator=torch.Generator(),  # scoring leaves the global random stream alone
            **loader_options(self.workers, self.device),
        )
        if adapt_bn:
            from tlcore.models.bn_adapt import adapt_batchnorm

            adapt_batchnorm(self.model, loader, self.device)
        outputs = predict_proba(
            self.model, loader, self.device, self.meta.tta, self.objective.activate, self.precision
        )
        return self.objective.to_units(outputs)

    def read_files(self, host: PluginHost, paths: Sequence[str | Path]) -> tuple[PredictionInputs, str | None]:
        """What to predict in ``paths`` (files, folders, ``FILE::MEMBER`` addresses) and its reader: the run's
        adapter when it is installed and reads new files, else the generic reader. The second value is a
        warning when the run's adapter is not installed."""
        warning = None
        if self.adapter and self.adapter not in host.adapters.names():
            warning = (f"the run was trained through adapter {self.adapter!r}, which is not installed; "
                       "reading the files as plain images")  # fmt: skip
        inputs, _ = prediction_inputs(host, self.adapter, self.adapter_options, [Path(p) for p in paths],
                                      self.meta.in_chans)  # fmt: skip
        return inputs, warning

    def reader_for(self, host: PluginHost, paths: Sequence[str]) -> Reader:
        """A reader for items the run recorded itself (predictions.csv): the run's adapter's when it can read
        them, else the generic one (an image that then fails to read is the caller's to skip)."""
        present = [p for p in paths if Path(source_file(p)).exists()]  # moved files are the caller's to skip
        try:
            return self.read_files(host, present)[0].reader if present else generic_reader(self.meta.in_chans)
        except TlcoreError:
            return generic_reader(self.meta.in_chans)


def generic_reader(channels: int) -> Reader:
    def read(path: str) -> np.ndarray:
        return read_for_prediction(path, channels)

    return read


def run_config(run_dir: Path, overrides: Sequence[str] = ()) -> RunConfig:
    """The run's settings (config.yaml) with ``overrides`` (``key=value``) applied."""
    saved = read_run_settings(run_dir)
    return build_config(saved.get("config") or {}, parse_overrides(overrides), "config")


@dataclass
class SplitInputs:
    """What scoring a run on one split of a dataset needs (``tl evaluate``, ``tl stress``)."""

    predictor: Predictor
    config: RunConfig
    prepared: PreparedData
    records: list[Record]
    warnings: list[str]

    def predict(self, view: View | None = None, adapt_bn: bool = False) -> np.ndarray:
        """The split's outputs, its images read by the data's own reader (as training read them)."""
        reader = self.prepared.dataset.reader
        return self.predictor.predict([r.path for r in self.records], reader, view, adapt_bn)


def split_inputs(
    host: PluginHost, run_dir: Path, data: str | None, split: str, overrides: Sequence[str] = (), strict: bool = False
) -> SplitInputs:
    """The run in ``run_dir`` and the records of ``split`` of ``data`` (default: the run's own data), loaded
    with the run's settings plus ``overrides``; ``split`` ``all`` is every image of ``data``."""
    from tlcore.data.prepare import prepare_data
    from tlcore.data.train_images import check_scored_images

    config = run_config(run_dir, overrides)
    predictor = Predictor.load(host, run_dir, config)
    config.strict = config.strict or strict
    data = data or read_run_settings(run_dir).get("data")
    if not data:
        raise TlcoreError("no --data given and the run does not record its data", "pass --data DIR")
    meta = predictor.meta
    try:
        prepared = prepare_data(host, data, config, classes=meta.classes, task=meta.task)
    except NoTrainSplitError as exc:
        # Adapters need a train split; an external site's labelled images have none.
        raise DataError(exc.message, "to score every image of another site, put them in <class>/ folders "
                        "and use --split all") from None  # fmt: skip
    if split == "all":  # an external site's labelled folder: every image, whatever split it landed in
        records = [r for part in prepared.dataset.splits.values() for r in part]
    elif split not in prepared.dataset.splits:
        raise TlcoreError(f"{data} has no {split!r} split", f"splits: {', '.join(prepared.dataset.splits)}")
    else:
        records = prepared.dataset.splits[split]
    warnings = check_scored_images(run_dir, prepared, records, split, config.strict)
    return SplitInputs(predictor, config, prepared, records, warnings)


def results(meta: ModelMeta, outputs: np.ndarray) -> list[dict[str, Any]]:
    """Each input's outputs named in the task's terms, in the run's class order.

    Classification ``{"label": top class, "probabilities": {class: p}}``; multilabel ``{"probabilities":
    {label: p}, "labels": [those at or above THRESHOLD, 0.5]}``; regression ``{"values": {target: value}}``
    in the targets' units. ``tl predict`` prints them and the Python API's table holds them."""
    out: list[dict[str, Any]] = []
    for row in outputs:
        named = {name: float(v) for name, v in zip(meta.classes, row, strict=True)}
        if meta.task == "classification":
            out.append({"label": meta.classes[int(np.argmax(row))], "probabilities": named})
        elif meta.task == "multilabel":
            out.append({"probabilities": named, "labels": [k for k, p in named.items() if p >= THRESHOLD]})
        else:
            out.append({"values": named})
    return out


@dataclass
class Evaluation:
    """What :func:`evaluate_run` wrote (``document``, to ``path``) and the run's task."""

    document: dict[str, Any]
    path: Path
    task: str

    @property
    def metrics(self) -> dict[str, Any]:
        """The split's scores, as ``report.json`` holds them for val and test."""
        return cast(dict[str, Any], self.document["metrics"])


def evaluate_run(
    host: PluginHost,
    run_dir: Path,
    data: str | None = None,
    split: str = "test",
    overrides: Sequence[str] = (),
    adapt_bn: bool = False,
    strict: bool = False,
) -> Evaluation:
    """Score the run in ``run_dir`` on ``split`` of ``data`` (default: the run's own data) and write
    ``evaluation-SPLIT.json`` beside its report (``evaluation-SPLIT-adapted-bn.json`` with ``adapt_bn``).

    Warnings (scored images the run trained on, data changed to load) are issued through
    :func:`tlcore.runtime.warn`; ``strict`` turns them into errors."""
    scoring = split_inputs(host, existing_run_dir(run_dir), data, split, overrides, strict)
    for line in scoring.warnings:
        warn(line)
    outputs = scoring.predict(adapt_bn=adapt_bn)
    objective, records = scoring.predictor.objective, scoring.records
    metrics = objective.metrics(objective.targets(records), outputs)
    document: dict[str, Any] = {"run": str(run_dir), "data": scoring.prepared.summary(), "split": split,
                                "metrics": metrics}  # fmt: skip
    name = f"evaluation-{split}.json"
    if adapt_bn:
        # Transductive: the split's own images set the statistics. Kept apart from the plain evaluation.
        document["adapted_batchnorm"] = {"images": len(records), "from": f"the {split} split's images",
                                         "labels_used": False}  # fmt: skip
        name = f"evaluation-{split}-adapted-bn.json"
    io_atomic.write_text(run_dir / name, json.dumps(document, indent=2))
    return Evaluation(document, run_dir / name, scoring.predictor.meta.task)
