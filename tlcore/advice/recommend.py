"""The advisor's rules: which backbone, and feature extraction or fine-tuning (which strategy).

Every rule is a plain comparison of a printed input with a named constant, applied in order;
the first technique rule that matches decides, and its sentence is the reason given. The
thresholds follow the usual transfer-learning guidance (small and similar data: a linear
classifier on frozen features; large data: fine-tune; the further the domain, the more of the
network should adapt; e.g. Yosinski et al. 2014, Kornblith et al. 2019), with the numbers below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Fewer labelled images than this in the smallest class: too few to fine-tune (or even to
#: select a fine-tuned epoch on) millions of parameters; a linear head on frozen features.
VERY_FEW_PER_CLASS = 10
#: Fewer than this in the smallest class counts as "few": fine-tune only when the domain is far.
FEW_PER_CLASS = 100
#: Domain similarity (0 = BatchNorm statistics as far off as for pure noise, 1 = the pretraining
#: statistics) at or above the midpoint counts as "near".
NEAR_SIMILARITY = 0.5
#: A cross-validated linear probe this accurate leaves fine-tuning at most this much to gain.
PROBE_SATURATED = 0.98
#: Two candidates whose probe accuracies differ by less than max(standard error, this) tie.
TIE_TOLERANCE = 0.01
#: The shortest fine-tuning schedule worth recommending when the preset's does not fit the budget.
MIN_FINETUNE_EPOCHS = 5
#: An input side this much larger than the images' own side only upsamples (no new detail).
UPSAMPLE_RATIO = 1.1


@dataclass(frozen=True)
class CandidateScores:
    """What the rules read about one candidate (all measured by the advisor)."""

    name: str
    backbone: str
    weights: str
    pretrained: bool
    logme: float | None
    probe_accuracy: float | None
    probe_std_error: float | None
    similarity: float | None
    gflops: float
    input_size: int
    finetune_minutes: float  # estimated on this machine for the full train split


@dataclass(frozen=True)
class DataFacts:
    images_per_class: int  # the smallest class of the full train split
    train_images: int
    median_image_side: int | None
    budget_minutes: float
    finetune_epochs: int = 15  # the fine-tuning preset's schedule, which finetune_minutes estimates


@dataclass
class Recommendation:
    """The advice: the chosen candidate (``backbone``, ``weights``, ``candidate`` as ``backbone[@weights]``),
    the ``technique`` and ``strategy``, the ``preset`` and ``settings`` (``--set`` keys) to train with and
    the ready ``command``; ``reasons``, one sentence per rule that decided; ``inputs``, the numbers and
    thresholds the rules compared; ``ranking``, every candidate most transferable first; ``warnings``."""

    backbone: str
    weights: str
    candidate: str
    technique: str
    strategy: str | None
    preset: str
    settings: dict[str, Any]
    command: str
    reasons: list[str]
    inputs: dict[str, Any]
    ranking: list[str]  # candidate names, most transferable first
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rank(values: Sequence[float | None]) -> list[float]:
    """Rank 1 = best (highest); missing values rank last; ties share the mean rank."""
    keyed = [(-(v if v is not None else float("-inf")), i) for i, v in enumerate(values)]
    order = sorted(keyed)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and order[j + 1][0] == order[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k][1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def transferability_order(candidates: Sequence[CandidateScores]) -> list[CandidateScores]:
    """Most transferable first: by the mean of the LogME rank and the linear-probe rank, ties by LogME.

    The two scores fail differently (LogME is a training-free evidence, the probe an empirical
    accuracy on a small subsample), so their mean rank is steadier than either alone."""
    logme_rank = _rank([c.logme for c in candidates])
    probe_rank = _rank([c.probe_accuracy for c in candidates])
    mean_rank = {c.name: (lr + pr) / 2 for c, lr, pr in zip(candidates, logme_rank, probe_rank, strict=True)}
    lr_of = {c.name: lr for c, lr in zip(candidates, logme_rank, strict=True)}
    return sorted(candidates, key=lambda c: (mean_rank[c.name], lr_of[c.name]))


def _upsamples(c: CandidateScores, facts: DataFacts) -> bool:
    return facts.median_image_side is not None and c.input_size > UPSAMPLE_RATIO * facts.median_image_side


def choose_backbone(candidates: Sequence[CandidateScores], facts: DataFacts) -> tuple[CandidateScores, list[str]]:
    """The most transferable pretrained candidate, or among those it ties with on the probe, the cheapest
    (one that does not upsample the images first, then fewest GFLOPs)."""
    order = transferability_order(candidates)
    pretrained = [c for c in order if c.pretrained]
    if not pretrained:
        return order[0], [f"no pretrained candidate could be scored: {order[0].name} is the only option"]
    top = pretrained[0]
    reasons = [f"{top.name} ranks first on transferability (mean rank of LogME and the linear probe)"]
    if top.probe_accuracy is None:
        return top, reasons
    tolerance = max(top.probe_std_error or 0.0, TIE_TOLERANCE)
    ties = [
        c for c in pretrained if c.probe_accuracy is not None and c.probe_accuracy >= top.probe_accuracy - tolerance
    ]
    chosen = min(ties, key=lambda c: (_upsamples(c, facts), c.gflops))
    if chosen is not top:
        why = "does not upsample the images and " if _upsamples(top, facts) and not _upsamples(chosen, facts) else ""
        reasons.append(
            f"{chosen.name} is within {tolerance:.3f} of it on the linear probe "
            f"({chosen.probe_accuracy:.3f} vs {top.probe_accuracy:.3f}) and {why}costs less "
            f"({chosen.gflops:.2f} vs {top.gflops:.2f} GFLOPs per image): chosen"
        )
    return chosen, reasons


def epochs_within_budget(chosen: CandidateScores, facts: DataFacts) -> int:
    """How many epochs of the preset's schedule fit the budget, at the estimated minutes per epoch."""
    return int(facts.budget_minutes / chosen.finetune_minutes * facts.finetune_epochs)


def similarity_level(similarity: float | None) -> str:
    if similarity is None:
        return "unknown"
    return "near" if similarity >= NEAR_SIMILARITY else "far"


def choose_technique(
    chosen: CandidateScores, facts: DataFacts, scratch: CandidateScores | None
) -> tuple[str, str | None, dict[str, Any], str, list[str]]:
    """(technique, strategy, extra settings, the deciding reason, warnings), first matching rule wins."""
    k = facts.images_per_class
    level = similarity_level(chosen.similarity)
    warnings: list[str] = []
    if level == "unknown":
        warnings.append("domain similarity could not be measured for this backbone: treated as far")
    if (
        scratch is not None
        and chosen.probe_accuracy is not None
        and scratch.probe_accuracy is not None
        and chosen.probe_accuracy <= scratch.probe_accuracy + max(chosen.probe_std_error or 0.0, TIE_TOLERANCE)
    ):
        warnings.append(
            f"the pretrained features probe no better than random ones ({chosen.probe_accuracy:.3f} vs "
            f"{scratch.probe_accuracy:.3f}): transfer may not help here; treated as far"
        )
        level = "far"
    fe: tuple[str, str | None, dict[str, Any]] = ("feature-extraction", None, {})
    lp_ft: tuple[str, str | None, dict[str, Any]] = ("fine-tuning", "lp-ft", {})
    full: tuple[str, str | None, dict[str, Any]] = (
        "fine-tuning",
        "full",
        {"strategy": "full", "freeze_stages": 0, "backbone_lr_mult": 1.0},
    )
    if chosen.finetune_minutes > facts.budget_minutes:
        fitting = epochs_within_budget(chosen, facts)
        if fitting < MIN_FINETUNE_EPOCHS:
            return (
                *fe,
                f"fine-tuning would take about {chosen.finetune_minutes:.0f} min here, over the budget of "
                f"{facts.budget_minutes:.0f} min even at {MIN_FINETUNE_EPOCHS} epochs: feature extraction "
                "(one backbone pass, then a head in seconds)",
                warnings,
            )
        warnings.append(
            f"the preset's {facts.finetune_epochs} epochs would take about {chosen.finetune_minutes:.0f} min, "
            f"over the budget of {facts.budget_minutes:.0f} min: fine-tuning, if chosen, runs {fitting} epochs"
        )
    if k < VERY_FEW_PER_CLASS:
        return (
            *fe,
            f"{k} images in the smallest class (< {VERY_FEW_PER_CLASS}): too few to fine-tune millions of "
            "parameters or pick an epoch; a linear head on frozen features",
            warnings,
        )
    if chosen.probe_accuracy is not None and chosen.probe_accuracy >= PROBE_SATURATED:
        return (
            *fe,
            f"the frozen features already reach {chosen.probe_accuracy:.3f} on a cross-validated linear probe "
            f"(>= {PROBE_SATURATED}): fine-tuning has little left to gain",
            warnings,
        )
    if k < FEW_PER_CLASS:
        if level == "near":
            return (
                *fe,
                f"few images per class ({k} < {FEW_PER_CLASS}) from a domain near the pretraining one "
                f"(similarity {chosen.similarity:.2f} >= {NEAR_SIMILARITY}): frozen features transfer well "
                "and cannot overfit",
                warnings,
            )
        return (
            *lp_ft,
            f"few images per class ({k} < {FEW_PER_CLASS}) from a domain far from the pretraining one "
            f"(similarity {_fmt(chosen.similarity)} < {NEAR_SIMILARITY}): frozen features fit poorly, so "
            "fine-tune gently: linear probe first, then all but the stem at a small learning rate (LP-FT)",
            warnings,
        )
    if level == "near":
        return (
            *lp_ft,
            f"enough images per class ({k} >= {FEW_PER_CLASS}) from a domain near the pretraining one "
            f"(similarity {chosen.similarity:.2f} >= {NEAR_SIMILARITY}): fine-tune with LP-FT, keeping the "
            "pretrained features close",
            warnings,
        )
    return (
        *full,
        f"enough images per class ({k} >= {FEW_PER_CLASS}) from a domain far from the pretraining one "
        f"(similarity {_fmt(chosen.similarity)} < {NEAR_SIMILARITY}): fine-tune every stage at the full "
        "learning rate so the features can move to the new domain",
        warnings,
    )


def _fmt(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def recommend(candidates: Sequence[CandidateScores], facts: DataFacts, data: str) -> Recommendation:
    if not candidates:
        raise ValueError("no candidate could be scored")
    chosen, reasons = choose_backbone(candidates, facts)
    scratch = next((c for c in candidates if not c.pretrained), None)
    technique, strategy, extra, decisive, warnings = choose_technique(chosen, facts, scratch)
    reasons.append(decisive)
    if technique == "fine-tuning" and chosen.finetune_minutes > facts.budget_minutes:
        extra = {**extra, "epochs": epochs_within_budget(chosen, facts)}
    if _upsamples(chosen, facts):
        warnings.append(
            f"{chosen.name} reads {chosen.input_size} px inputs but the images are about "
            f"{facts.median_image_side} px: they are upsampled (no new detail, more compute)"
        )
    preset = "feature-extraction" if technique == "feature-extraction" else "fine-tuning"
    settings: dict[str, Any] = {"backbone": chosen.backbone, **extra}
    if chosen.weights != "default":
        settings["weights"] = chosen.weights
    command = " ".join(
        ["tl train", f"--preset {preset}", f"--data {data}", *(f"--set {k}={v}" for k, v in settings.items())]
    )
    inputs = {
        "images_per_class_min": facts.images_per_class,
        "train_images": facts.train_images,
        "median_image_side": facts.median_image_side,
        "similarity": None if chosen.similarity is None else round(chosen.similarity, 3),
        "similarity_level": similarity_level(chosen.similarity),
        "probe_accuracy": chosen.probe_accuracy,
        "finetune_minutes_estimate": round(chosen.finetune_minutes, 1),
        "budget_minutes": facts.budget_minutes,
        "finetune_epochs": facts.finetune_epochs,
        "thresholds": {
            "very_few_per_class": VERY_FEW_PER_CLASS,
            "few_per_class": FEW_PER_CLASS,
            "near_similarity": NEAR_SIMILARITY,
            "probe_saturated": PROBE_SATURATED,
            "tie_tolerance": TIE_TOLERANCE,
            "min_finetune_epochs": MIN_FINETUNE_EPOCHS,
        },
    }
    return Recommendation(
        backbone=chosen.backbone,
        weights=chosen.weights,
        candidate=chosen.name,
        technique=technique,
        strategy=strategy,
        preset=preset,
        settings=settings,
        command=command,
        reasons=reasons,
        inputs=inputs,
        ranking=[c.name for c in transferability_order(candidates)],
        warnings=warnings,
    )
