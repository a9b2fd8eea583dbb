"""``tl advise``: score candidate backbones on the user's data without training them, then recommend.

For each candidate, on one bounded stratified subsample of train: features from the feature
cache, LogME, cross-validated linear and k-NN probes, domain similarity, and the measured cost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

import tlcore
from tlcore.advice.cost import Cost, measure_cost
from tlcore.advice.defaults import (
    BUDGET_IMAGES,
    BUDGET_MINUTES,
    FOLDS,
    HUB_CANDIDATES,
    OFFLINE_CANDIDATES,
    SIMILARITY_IMAGES,
)
from tlcore.advice.logme import logme
from tlcore.advice.probes import knn_probe, linear_probe
from tlcore.advice.recommend import CandidateScores, DataFacts, Recommendation, recommend
from tlcore.advice.sampling import class_counts, stratified_subsample
from tlcore.advice.similarity import bn_shift, head_confidence, imagenet_head
from tlcore.config import RunConfig, build_config, check_setting, preset_settings
from tlcore.data.prepare import PreparedData, prepare_data
from tlcore.errors import ConfigError, TlcoreError
from tlcore.plugins import PluginHost
from tlcore.runtime import warn
from tlcore.specs import Record
from tlcore.training.pipeline import Pipeline

__all__ = [
    "HUB_CANDIDATES",
    "OFFLINE_CANDIDATES",
    "AdviseInputs",
    "AdviseOptions",
    "Candidate",
    "advise",
    "advise_inputs",
    "parse_candidates",
    "write_json",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """``backbone`` or ``backbone@weights`` (weights: default | hub | none | a file)."""

    backbone: str
    weights: str = "default"

    @property
    def name(self) -> str:
        return self.backbone if self.weights == "default" else f"{self.backbone}@{self.weights}"


def parse_candidates(text: str | Sequence[str] | None, hub_reachable: bool) -> list[Candidate]:
    """``--candidates``: comma-separated ``backbone[@weights]`` (or a list of them); none: the defaults,
    with the hub's models when ``hub_reachable``."""
    if text is not None and not isinstance(text, str):
        text = ",".join(text)
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(OFFLINE_CANDIDATES)
    if not text and hub_reachable:
        names[-1:-1] = HUB_CANDIDATES
    out = []
    for name in names:
        backbone, _, weights = name.partition("@")
        if not backbone:
            raise ConfigError(f"--candidates: {name!r} has no backbone", "e.g. tf_efficientnet_lite0@none")
        out.append(Candidate(backbone, weights or "default"))
    if len({c.name for c in out}) != len(out):
        raise ConfigError("--candidates lists a candidate twice", "name each backbone@weights once")
    return out


@dataclass
class AdviseOptions:
    """How :func:`advise` scores: the subsample, the probes' folds, the similarity pass, the budget rule."""

    budget_images: int = BUDGET_IMAGES  # the subsample every score is computed on
    similarity_images: int = SIMILARITY_IMAGES  # images for the BatchNorm-statistics pass
    folds: int = FOLDS
    seed: int = 0
    budget_minutes: float = BUDGET_MINUTES  # compute budget for a fine-tuning run on this machine
    finetune_epochs: int = 15  # the fine-tuning preset's schedule, for the time estimate
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class AdviseInputs(NamedTuple):
    """What :func:`advise` takes besides the host and the data."""

    candidates: list[Candidate]
    config: RunConfig
    options: AdviseOptions


def advise_inputs(
    host: PluginHost,
    *,
    candidates: str | Sequence[str] | None = None,
    budget_images: int = BUDGET_IMAGES,
    budget_minutes: float = BUDGET_MINUTES,
    folds: int = FOLDS,
    similarity_images: int = SIMILARITY_IMAGES,
    image_size: int | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> AdviseInputs:
    """The candidates, run configuration and options of one ``tl advise`` (and of ``tlcore.advise``): the
    feature-extraction preset with ``settings`` (``--set`` keys with their values) and ``image_size`` over
    it; ``progress=None`` keeps the configuration's. Bad values are the command's one-line ConfigError."""
    from tlcore.models.backbones import _hub_reachable

    for name, value, least, default in (
        ("--budget-images", budget_images, 1, BUDGET_IMAGES),
        ("--similarity-images", similarity_images, 1, SIMILARITY_IMAGES),
        ("--folds", folds, 2, FOLDS),
    ):
        if value < least:
            raise ConfigError(f"{name} must be at least {least} (got {value})", f"the default is {default}")
    if not budget_minutes > 0:
        raise ConfigError(
            f"--budget-minutes must be above 0 (got {budget_minutes})", f"the default is {BUDGET_MINUTES:g}"
        )
    overrides = dict(settings or {})
    for key in overrides:
        check_setting(key)
    if image_size is not None:
        overrides["image_size"] = image_size
    if progress is not None:
        overrides["progress"] = progress
    config = build_config(preset_settings(host.presets, "feature-extraction"), overrides, "tl advise")
    chosen = parse_candidates(candidates, hub_reachable=not candidates and _hub_reachable())
    options = AdviseOptions(
        budget_images=budget_images,
        similarity_images=similarity_images,
        folds=folds,
        seed=config.seed,
        budget_minutes=budget_minutes,
        finetune_epochs=int(preset_settings(host.presets, "fine-tuning").get("epochs", 15)),
        progress=config.progress,
    )
    return AdviseInputs(chosen, config, options)


@dataclass
class CandidateResult:
    candidate: Candidate
    scores: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class _Noise(Dataset[tuple[torch.Tensor, int]]):
    """Uniform-noise uint8 images: the "nothing like the pretraining data" anchor of the similarity scale."""

    def __init__(self, n: int, size: tuple[int, int], channels: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, channels, *size), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], 0


def _image_side(prepared: PreparedData, records: Sequence[Record], n: int = 48) -> int | None:
    """Median shorter side of up to ``n`` training images, as the reader returns them."""
    sides = []
    for r in records[:: max(1, len(records) // n)][:n]:
        try:
            sides.append(int(min(prepared.dataset.reader(r.path).shape[:2])))
        except Exception:  # an unreadable image is the data check's business, not the advisor's
            continue
    return int(statistics.median(sides)) if sides else None


def _score_candidate(
    host: PluginHost,
    base: RunConfig,
    prepared: PreparedData,
    candidate: Candidate,
    sample: list[Record],
    options: AdviseOptions,
    n_train: int,
    n_val: int,
) -> dict[str, Any]:
    config = base.model_copy(
        update={"backbone": candidate.backbone, "weights": candidate.weights, "progress": options.progress}
    )
    started = time.perf_counter()
    pipe = Pipeline(host, config, prepared)
    y = np.array([int(r.target) for r in sample])  # type: ignore[arg-type]
    extraction = pipe.features(sample, label=f"{candidate.name}: features")
    x = extraction.features
    scores: dict[str, Any] = {
        "backbone": pipe.backbone_spec.name,
        "timm_name": pipe.backbone_spec.timm_name,
        "weights": {"requested": candidate.weights, "source": pipe.weights.kind, "origin": pipe.weights.origin},
        "pretrained": pipe.weights.pretrained,
        "feature_dim": int(x.shape[1]),
        "features_cached": extraction.cached,
        "feature_seconds": round(extraction.seconds, 2),
    }
    finite = bool(np.isfinite(x).all())
    scores["logme"] = round(logme(x, y), 5) if finite else None
    linear = linear_probe(x, y, options.folds, options.seed) if finite else None
    knn = knn_probe(x, y, options.folds, options.seed) if finite else None
    scores["linear_probe"] = linear.as_dict() if linear else None
    scores["knn_probe"] = knn.as_dict() if knn else None

    similarity: dict[str, Any] = {"score": None, "bn_shift": None, "noise_bn_shift": None, "imagenet_head": None}
    if pipe.weights.pretrained:
        hub = pipe.weights.hub  # a hub model: the commit its backbone was built from, already in the cache
        timm_name = f"hf-hub:{hub['repo_id']}@{hub['revision']}" if hub else pipe.backbone_spec.timm_name
        head = imagenet_head(pipe.backbone, pipe.weights.kind, pipe.weights.file, timm_name)
        if head is not None and finite:
            hc = head_confidence(x, *head)
            similarity["imagenet_head"] = {
                "max_softmax": round(hc.max_softmax, 4),
                "entropy": round(hc.entropy, 4),
                "top_classes": [{"class": c, "share": round(s, 3)} for c, s in hc.top_classes],
            }
        few = stratified_subsample(sample, options.similarity_images, options.seed)
        few_ds = pipe.dataset(few)
        target_shift = bn_shift(pipe.backbone, few_ds, few_ds.normalize, pipe.device)
        noise = _Noise(min(len(few), 32), pipe.pre.input_size, pipe.in_chans)
        noise_shift = bn_shift(pipe.backbone, noise, few_ds.normalize, pipe.device)
        if target_shift is not None and noise_shift:
            similarity.update(
                bn_shift=round(target_shift, 4),
                noise_bn_shift=round(noise_shift, 4),
                score=round(max(0.0, 1.0 - target_shift / noise_shift), 4),
            )
    scores["similarity"] = similarity

    cost: Cost = measure_cost(pipe.backbone, pipe.pre.input_size[0], pipe.in_chans, pipe.device)
    train_rate = cost.train_images_per_s
    finetune_s = options.finetune_epochs * (n_train / train_rate + n_val / cost.images_per_s)
    scores["cost"] = {
        **cost.as_dict(),
        "finetune_minutes_estimate": round(finetune_s / 60, 1),
        "feature_extraction_minutes_estimate": round((n_train + n_val) / cost.images_per_s / 60, 1),
    }
    scores["seconds"] = round(time.perf_counter() - started, 1)
    return scores


def _as_rule_input(result: CandidateResult) -> CandidateScores:
    s = result.scores
    probe = s.get("linear_probe") or {}
    return CandidateScores(
        name=result.candidate.name,
        backbone=result.candidate.backbone,
        weights=result.candidate.weights,
        pretrained=bool(s["pretrained"]),
        logme=s.get("logme"),
        probe_accuracy=probe.get("accuracy"),
        probe_std_error=probe.get("std_error"),
        similarity=s["similarity"]["score"],
        gflops=float(s["cost"]["gflops"]),
        input_size=int(s["cost"]["input_size"]),
        finetune_minutes=float(s["cost"]["finetune_minutes_estimate"]),
    )


def advise(
    host: PluginHost,
    data: str,
    candidates: Sequence[Candidate],
    config: RunConfig,
    options: AdviseOptions,
    prepared: PreparedData | None = None,
) -> dict[str, Any]:
    """Score every candidate and recommend; returns the content of ``advise.json``.

    ``prepared`` skips loading ``data`` (a caller that already holds it, e.g. on a subset)."""
    started = time.perf_counter()
    if prepared is None:
        prepared = prepare_data(host, data, config)
    ds = prepared.dataset
    if ds.task != "classification":
        raise TlcoreError(f"tl advise scores classification data; this dataset's task is {ds.task!r}")
    train = ds.splits["train"]
    counts = class_counts(train)
    sample = stratified_subsample(train, options.budget_images, options.seed)
    n_val = len(ds.splits.get("val", []))
    facts = DataFacts(
        images_per_class=min(counts.values()),
        train_images=len(train),
        median_image_side=_image_side(prepared, train),
        budget_minutes=options.budget_minutes,
        finetune_epochs=options.finetune_epochs,
    )
    results: list[CandidateResult] = []
    for candidate in candidates:
        result = CandidateResult(candidate)
        try:
            result.scores = _score_candidate(host, config, prepared, candidate, sample, options, len(train), n_val)
        except TlcoreError as exc:
            result.error = str(exc)
            warn(f"skipping {candidate.name}: {exc}")
        results.append(result)
    scored = [r for r in results if r.error is None]
    if not scored:
        raise TlcoreError("no candidate backbone could be scored", "see the messages above; try --candidates")
    recommendation: Recommendation = recommend([_as_rule_input(r) for r in scored], facts, data)
    return {
        "schema_version": SCHEMA_VERSION,
        "tlcore_version": tlcore.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "source": data,
            "classes": ds.classes,
            "train_images": len(train),
            "train_per_class": {ds.classes[k]: v for k, v in counts.items()},
            "images_per_class_min": facts.images_per_class,
            "median_image_side": facts.median_image_side,
            "subsample": {"images": len(sample), "budget": options.budget_images, "seed": options.seed},
        },
        "options": {
            "folds": options.folds,
            "similarity_images": options.similarity_images,
            "budget_minutes": options.budget_minutes,
            "finetune_epochs": options.finetune_epochs,
            "device": str(config.device),
            "threads": torch.get_num_threads(),
        },
        "candidates": [{"name": r.candidate.name, **r.scores, "error": r.error} for r in results],
        "recommendation": recommendation.as_dict(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def write_json(report: dict[str, Any], output: Path) -> Path:
    """``advise.json`` in the folder ``output`` (made if missing); its path."""
    import json

    output.mkdir(parents=True, exist_ok=True)
    path = output / "advise.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(path)
    return path
