"""The typed objects plugins register through the hooks in :mod:`tlcore.hookspecs`.

Each registry holds one kind of object, named so a reader can tell what it does: a
:class:`DatasetAdapter` loads labelled records, an :class:`Augmentation` builds an
albumentations pipeline, a :class:`Backbone` says which timm model and which weights, a
:class:`Head` builds the classifier on top, and a :class:`Preset` ties them together. A :class:`Logger`
builds a :class:`RunLogger` that reports a run to an experiment tracker (MLflow, TensorBoard).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Task = Literal["classification", "multilabel", "regression"]

#: Split names adapters accept (folder names, manifest values), lower-case, to the canonical three.
SPLIT_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


#: A record path may address part of a file: ``FILE::MEMBER`` (a slice of a volume, an array in an archive).
#: The feature cache and the leakage check then hash ``FILE``'s bytes plus ``MEMBER``.
MEMBER_SEPARATOR = "::"


def source_file(path: str) -> str:
    """The file behind a record path: ``path`` itself, or ``FILE`` of a ``FILE::MEMBER`` address."""
    if MEMBER_SEPARATOR in path and not os.path.exists(path):
        return path.rpartition(MEMBER_SEPARATOR)[0]
    return path


def read_rgb(path: str) -> np.ndarray:
    """Decode an image file to an ``HxWx3`` uint8 array (the default reader)."""
    from tlcore.images import read_image

    return read_image(path)


@dataclass(frozen=True)
class Record:
    """One labelled sample: where it is, its target, and an optional group (patient, field)."""

    path: str
    target: int | float | tuple[float, ...]
    group: str | None = None


@dataclass
class LabeledDataset:
    """What a dataset adapter returns: class names and records per split.

    Splits are named ``train``, ``val`` and ``test``; a missing ``val`` is carved out of
    ``train`` by the engine with a fixed seed (grouped by ``Record.group`` when set).
    ``reader`` turns a record path into an ``HxWxC`` uint8 array; adapters for DICOM,
    NIfTI or multispectral data supply their own.

    An adapter never leaves part of its input out silently: ``dropped`` lists what it did not
    turn into records (a manifest row without a label, a folder it does not read that holds
    images), one dict each with a ``reason`` and a ``path`` and/or ``row``; ``labels_trimmed``
    lists labels used without their surrounding whitespace (``{"label": "red ", "used_as": "red",
    "rows": 3}``). The engine reports both, warns, and refuses them under ``strict``.
    """

    classes: list[str]
    splits: dict[str, list[Record]]
    task: Task = "classification"
    reader: Callable[[str], np.ndarray] = read_rgb
    root: Path | None = None
    channels: int = 3
    provenance: dict[str, Any] = field(default_factory=dict)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    labels_trimmed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PredictionInputs:
    """What ``tl predict`` reads for a run trained through an adapter.

    ``items`` are the addresses ``reader`` understands: files, or members such as ``VOLUME::SLICE``,
    in the order the predictions are printed. ``reader`` decodes each one exactly as training did
    (DICOM window, volume normalisation, ...), so a model sees the same pixels at prediction time.
    """

    items: list[str]
    reader: Callable[[str], np.ndarray]


@dataclass(frozen=True)
class DatasetAdapter:
    """Loads a dataset from a local path.

    ``load(root, options)`` returns a :class:`LabeledDataset`. ``detect(root)``, when given,
    says whether this adapter recognises ``root``; it is used when no adapter is named.
    ``predict_inputs(paths, options, channels)``, when given, turns the files and folders a user
    passes to ``tl predict`` into :class:`PredictionInputs`, with the run's adapter options; without
    it, ``tl predict`` decodes image files with the generic reader.
    """

    name: str
    description: str
    load: Callable[[Path, Mapping[str, Any]], LabeledDataset]
    detect: Callable[[Path], bool] | None = None
    #: Higher is tried first when auto-detecting; specific formats should outrank generic folders.
    priority: int = 0
    predict_inputs: Callable[[list[Path], Mapping[str, Any], int], PredictionInputs] | None = None


@dataclass(frozen=True)
class AugmentationContext:
    """What an augmentation builder is told: the model's input size and whether it trains."""

    image_size: tuple[int, int]
    train: bool
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    channels: int = 3
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Augmentation:
    """Builds an albumentations transform from ``HxWxC`` uint8 to the model's input size.

    Normalisation (mean/std of the pretrained weights) and the tensor conversion are applied
    by the engine afterwards, so an augmentation never needs to know the weights. It decides the
    training view only: with ``train=False``, ``build`` returns the core's eval view
    (``tlcore.data.transforms.eval_transform``), the one view every command scores through.
    """

    name: str
    description: str
    build: Callable[[AugmentationContext], Any]


@dataclass(frozen=True)
class Perturbation:
    """One named acquisition change for ``tl stress``: the same image as another device, site or setting
    would give it.

    ``apply`` maps an ``HxWxC`` float32 image in ``[0, 1]`` to the same shape and range; it is given the
    model's input view (after resize and crop) and must be deterministic (seed any noise from the image,
    so two runs report the same numbers). tlcore maps 8-bit images and other data to ``[0, 1]`` and back.
    """

    name: str
    description: str
    apply: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Backbone:
    """A pretrained model: a timm architecture plus where its weights come from.

    ``timm_name`` is a timm model name (``resnet50``, ``resnet50.a1_in1k``) or a Hugging Face hub id
    of a timm model (``hf-hub:ORG/NAME[@REVISION]``), which brings its own architecture and weights.
    ``default_weights`` is one of ``hub`` (timm's pretrained download), ``file`` (the local
    file returned by ``weights_file``, in timm's naming) or ``none`` (random initialisation).
    """

    name: str
    description: str
    timm_name: str
    default_weights: Literal["hub", "file", "none"] = "hub"
    weights_file: Callable[[], Path] | None = None
    family: str = ""


HeadKind = Literal["torch", "sklearn"]


@dataclass(frozen=True)
class HeadContext:
    """What a head builder is told: feature width, number of outputs, task and parameters."""

    in_features: int
    num_outputs: int
    task: Task = "classification"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Head:
    """A classifier on top of backbone features.

    ``kind="torch"``: ``build`` returns an ``nn.Module`` mapping features to logits, usable in
    both feature extraction and fine-tuning. ``kind="sklearn"``: ``build`` returns an estimator
    with ``fit`` / ``predict_proba`` (or ``decision_function``), for feature extraction only.
    """

    name: str
    description: str
    kind: HeadKind
    build: Callable[[HeadContext], Any]


@dataclass(frozen=True)
class Preset:
    """A named training recipe: values for the run configuration (see :class:`tlcore.config.RunConfig`).

    ``extends`` names another preset whose settings this one starts from.
    """

    name: str
    description: str
    settings: Mapping[str, Any]
    extends: str | None = None


@dataclass(frozen=True)
class LoggerContext:
    """What a logger builder is told: the run's resolved settings and its run directory (which may not exist yet)."""

    config: Mapping[str, Any]
    run_dir: Path


#: How a tracked run ended: trained and written, failed with an error, or interrupted (Ctrl-C).
RunStatus = Literal["FINISHED", "FAILED", "KILLED"]


class RunLogger:
    """One run's connection to an experiment tracker, built by :attr:`Logger.build` for each run.

    tlcore calls, in this order and in the process that writes the run directory: ``start`` once (after the
    run directory is created), ``log_epoch`` after each epoch, ``log_report`` and ``log_artifacts`` once the run
    directory is complete, then ``close``. A run that fails or is interrupted after ``start`` skips to ``close``
    with ``FAILED`` or ``KILLED``. Every method does nothing here: a subclass overrides the ones it needs.

    A method that raises never fails the run: tlcore warns once, calls ``close("FAILED")`` and stops using
    this logger for the rest of the run; the run directory is complete either way.
    """

    def start(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """The run begins: ``config`` is the resolved configuration (``RunConfig.model_dump()``), ``meta`` the
        run's identity (``run_id``, ``run_dir``, ``preset``, ``data``, ``adapter``, ``technique``, ``task``,
        ``classes``, ``resumed``, ``tlcore_version``)."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """One epoch's numbers, ``epoch`` counted from 1: the columns of ``metrics.csv`` (``train_loss``,
        ``val_accuracy``, ...) or of a torch head's history in feature extraction."""

    def log_report(self, metrics: Mapping[str, float], report: Mapping[str, Any]) -> None:
        """The final scores of the saved model: ``metrics`` are report.json's val and test scalars as
        ``val/<metric>`` and ``test/<metric>``; ``report`` is report.json's whole content."""

    def log_artifacts(self, run_dir: Path, files: Sequence[Path]) -> None:
        """The run directory's files (report.json, config.yaml, metrics.csv, predictions.csv, plots, the model),
        as paths under ``run_dir``."""

    def close(self, status: RunStatus) -> None:
        """The end, always called once after ``start``: ``FINISHED``, ``FAILED`` or ``KILLED``."""


@dataclass(frozen=True)
class Logger:
    """An experiment tracker a run can report to: ``--set loggers=[NAME]``.

    ``build(context)`` is called for every run that names the logger, before any data is loaded: it checks what the
    logger needs (an installed package, a setting), raising a :class:`tlcore.errors.ConfigError` that says how to fix
    it, and returns a :class:`RunLogger`. It must not write files or contact a server: that is ``start``'s job.
    """

    name: str
    description: str
    build: Callable[[LoggerContext], RunLogger]
