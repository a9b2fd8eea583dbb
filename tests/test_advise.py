"""tl advise: LogME, probes, similarity and the recommendation rules on constructed data; the CLI end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tlcore.advice.advisor import OFFLINE_CANDIDATES, parse_candidates
from tlcore.advice.logme import logme
from tlcore.advice.probes import knn_probe, linear_probe
from tlcore.advice.recommend import (
    FEW_PER_CLASS,
    NEAR_SIMILARITY,
    VERY_FEW_PER_CLASS,
    CandidateScores,
    DataFacts,
    recommend,
    transferability_order,
)
from tlcore.advice.sampling import nested_fractions, stratified_subsample
from tlcore.advice.similarity import bn_shift, head_confidence
from tlcore.errors import ConfigError
from tlcore.specs import Record


def _features(
    separable: bool, n: int = 240, d: int = 64, classes: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, d))
    if separable:
        x[:, :classes] += 4.0 * np.eye(classes)[y]
    return x, y


@pytest.mark.parametrize(("n", "d"), [(240, 64), (60, 512)])  # N > D and the usual N < D of a subsample
def test_logme_ranks_separating_features_above_noise(n: int, d: int) -> None:
    good, y = _features(True, n, d)
    bad, _ = _features(False, n, d, seed=1)
    assert logme(good, y) > logme(bad, y) + 0.1


def test_logme_prefers_stronger_class_signal() -> None:
    rng = np.random.default_rng(2)
    y = np.arange(300) % 3
    noise = rng.normal(size=(300, 32))
    scores = [logme(noise + s * np.pad(np.eye(3)[y], ((0, 0), (0, 29))), y) for s in (0.5, 1.5, 4.0)]
    assert scores == sorted(scores)


def test_logme_matches_the_evidence_at_its_fixed_point() -> None:
    """The SVD shortcut equals the textbook evidence with A = alpha I + beta F^T F (N < D: zero eigenvalues)."""
    rng = np.random.default_rng(3)
    f = rng.normal(size=(20, 30))
    y = np.arange(20) % 2
    score = logme(f, y)
    # textbook log evidence per class, maximised over a grid of (alpha, beta): never above the fixed point
    best = []
    for c in (0, 1):
        t = (y == c).astype(float)
        values = []
        for a in np.logspace(-3, 3, 25):
            for b in np.logspace(-3, 3, 25):
                big = a * np.eye(30) + b * f.T @ f
                m = b * np.linalg.solve(big, f.T @ t)
                ev = (
                    15 * np.log(a)
                    + 10 * np.log(b)
                    - 0.5 * np.linalg.slogdet(big)[1]
                    - b / 2 * ((t - f @ m) ** 2).sum()
                    - a / 2 * m @ m
                    - 10 * np.log(2 * np.pi)
                ) / 20
                values.append(ev)
        best.append(max(values))
    assert score >= np.mean(best) - 1e-6
    assert score - np.mean(best) < 0.05  # the grid gets close to the optimum the iteration finds


def test_logme_rejects_bad_input() -> None:
    x, y = _features(True)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        logme(x, y)


def test_probes_separate_signal_from_noise() -> None:
    good, y = _features(True)
    bad, _ = _features(False, seed=1)
    lin_good, lin_bad = linear_probe(good, y), linear_probe(bad, y)
    knn_good = knn_probe(good, y)
    assert lin_good is not None and lin_bad is not None and knn_good is not None
    assert lin_good.accuracy > 0.95 and knn_good.accuracy > 0.9
    assert lin_bad.accuracy < 0.6  # chance is 1/3
    assert lin_good.folds == 5 and lin_good.std_error >= 0
    assert linear_probe(good[:4], np.array([0, 0, 0, 1])) is None  # one image in a class: no stratified CV


def _records(counts: dict[int, int]) -> list[Record]:
    return [Record(f"{k}-{i}.png", k) for k, n in counts.items() for i in range(n)]


def test_stratified_subsample_keeps_proportions_and_every_class() -> None:
    records = _records({0: 600, 1: 300, 2: 3})
    sample = stratified_subsample(records, 90, seed=0)
    counts = np.bincount([int(r.target) for r in sample])  # type: ignore[arg-type]
    assert len(sample) == 90 and counts[2] >= 1 and abs(counts[0] - 2 * counts[1]) <= 2
    assert stratified_subsample(records, 90, seed=0) == sample  # deterministic
    assert stratified_subsample(records, 5000) == records


def test_nested_fractions_grow_and_contain_each_other() -> None:
    records = _records({0: 40, 1: 10})
    subsets = nested_fractions(records, [0.1, 0.5, 1.0], seed=3)
    assert [len(subsets[f]) for f in (0.1, 0.5, 1.0)] == [4 + 1, 20 + 5, 50]
    assert set(subsets[0.1]) <= set(subsets[0.5]) <= set(subsets[1.0])


def test_bn_shift_is_zero_on_pretraining_statistics_and_grows_with_the_shift() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4)).eval()
    model[1].running_mean.fill_(0.0)
    model[1].running_var.fill_(1.0)
    nn.init.eye_(model[0].weight.view(4, 3)[:3])  # the conv passes the input through

    def shift(offset: float) -> float:
        x = torch.randn(512, 3, 4, 4) + offset
        data = [(x[i], 0) for i in range(len(x))]
        value = bn_shift(model, data, lambda t, _d: t, torch.device("cpu"), batch_size=128)  # type: ignore[arg-type]
        assert value is not None
        return value

    assert shift(0.0) < 0.5 * shift(1.0) < shift(3.0)


def test_head_confidence_separates_confident_and_uniform_heads() -> None:
    feats = np.eye(4, 8)
    sharp = head_confidence(feats, 20 * np.eye(1000, 8), np.zeros(1000))
    flat = head_confidence(feats, np.zeros((1000, 8)), np.zeros(1000))
    assert sharp.max_softmax > 0.9 > 0.01 > flat.max_softmax
    assert flat.entropy == pytest.approx(1.0) and sharp.entropy < 0.1
    assert len(sharp.top_classes) == 3


def _candidate(name: str, probe: float, logme_score: float, **kw: object) -> CandidateScores:
    values: dict[str, object] = dict(
        name=name,
        backbone=name.split("@")[0],
        weights="none" if name.endswith("@none") else "default",
        pretrained=not name.endswith("@none"),
        logme=logme_score,
        probe_accuracy=probe,
        probe_std_error=0.01,
        similarity=None if name.endswith("@none") else 0.7,
        gflops=1.0,
        input_size=224,
        finetune_minutes=10.0,
    )
    values.update(kw)
    return CandidateScores(**values)  # type: ignore[arg-type]


def _facts(per_class: int, budget: float = 60.0) -> DataFacts:
    return DataFacts(
        images_per_class=per_class, train_images=3 * per_class, median_image_side=256, budget_minutes=budget
    )


def _advice(
    per_class: int, similarity: float = 0.7, budget: float = 60.0, probe: float = 0.9
) -> tuple[str, str | None]:
    cands = [
        _candidate("big", probe, -0.5, similarity=similarity, gflops=2.0),
        _candidate("big@none", 0.5, -0.9),
    ]
    rec = recommend(cands, _facts(per_class, budget), "DIR")
    return rec.technique, rec.strategy


def test_recommendation_changes_with_images_per_class() -> None:
    assert _advice(VERY_FEW_PER_CLASS - 5) == ("feature-extraction", None)
    assert _advice(FEW_PER_CLASS * 5) == ("fine-tuning", "lp-ft")


def test_recommendation_changes_with_similarity() -> None:
    few, many = (VERY_FEW_PER_CLASS + FEW_PER_CLASS) // 2, FEW_PER_CLASS * 5
    near, far = NEAR_SIMILARITY + 0.2, NEAR_SIMILARITY - 0.2
    assert _advice(few, near) == ("feature-extraction", None)
    assert _advice(few, far) == ("fine-tuning", "lp-ft")
    assert _advice(many, near) == ("fine-tuning", "lp-ft")
    assert _advice(many, far) == ("fine-tuning", "full")


def test_recommendation_respects_budget_and_saturated_probes() -> None:
    # 15 epochs take an estimated 10 min: at a budget of 2 min only 3 epochs fit (< 5): feature extraction
    assert _advice(1000, budget=2.0)[0] == "feature-extraction"
    assert _advice(1000, probe=0.99)[0] == "feature-extraction"
    cands = [_candidate("big", 0.9, -0.5, gflops=2.0), _candidate("big@none", 0.5, -0.9)]
    shorter = recommend(cands, _facts(1000, budget=5.0), "DIR")  # 7 epochs fit: fine-tune, shorter
    assert shorter.technique == "fine-tuning" and shorter.settings["epochs"] == 7
    assert "--set epochs=7" in shorter.command and any("7 epochs" in w for w in shorter.warnings)


def test_backbone_choice_prefers_the_cheaper_of_tied_candidates_and_says_why() -> None:
    cands = [
        _candidate("large", 0.900, -0.40, gflops=3.0),
        _candidate("small", 0.895, -0.45, gflops=0.5),
        _candidate("weak", 0.70, -0.80, gflops=0.1),
        _candidate("large@none", 0.50, -0.90),
    ]
    rec = recommend(cands, _facts(500), "DIR")
    assert rec.ranking == ["large", "small", "weak", "large@none"]
    assert rec.candidate == "small" and any("costs less" in r for r in rec.reasons)
    assert "--set backbone=small" in rec.command
    assert transferability_order(cands)[0].name == "large"


def test_recommendation_warns_when_pretraining_does_not_beat_random_features() -> None:
    cands = [_candidate("net", 0.80, -0.5), _candidate("net@none", 0.81, -0.6)]
    rec = recommend(cands, _facts(500), "DIR")
    assert any("no better than random" in w for w in rec.warnings)
    assert (rec.technique, rec.strategy) == ("fine-tuning", "full")  # treated as a far domain


def test_parse_candidates() -> None:
    assert [c.name for c in parse_candidates(None, hub_reachable=False)] == list(OFFLINE_CANDIDATES)
    assert "resnet50" in [c.name for c in parse_candidates(None, hub_reachable=True)]
    parsed = parse_candidates("resnet18@hub, tf_efficientnet_lite0@none", hub_reachable=True)
    assert [(c.backbone, c.weights) for c in parsed] == [("resnet18", "hub"), ("tf_efficientnet_lite0", "none")]
    with pytest.raises(ConfigError):
        parse_candidates("a,a", hub_reachable=False)


def test_tl_advise_end_to_end_writes_the_json_schema(
    tl: Callable[..., tuple[int, str, str]], make_folder: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_folder(tmp_path / "colours", {"train": 10, "val": 3, "test": 3})
    out = tmp_path / "advice"
    code, _, err = tl(
        "advise",
        "--data",
        data,
        "--candidates",
        "tf_efficientnet_lite0,tf_efficientnet_lite0@none",
        "--image-size",
        "32",
        "--similarity-images",
        "12",
        "--folds",
        "3",
        "--output",
        out,
        "--quiet",
    )
    assert code == 0, err
    report = json.loads((out / "advise.json").read_text())
    assert report["schema_version"] == 1
    assert report["data"]["images_per_class_min"] == 10 and report["data"]["subsample"]["images"] == 30
    names = [c["name"] for c in report["candidates"]]
    assert names == ["tf_efficientnet_lite0", "tf_efficientnet_lite0@none"]
    pretrained, scratch = report["candidates"]
    for c in report["candidates"]:
        assert c["error"] is None and isinstance(c["logme"], float)
        assert 0 <= c["linear_probe"]["accuracy"] <= 1 and c["knn_probe"]["folds"] == 3
        assert c["cost"]["parameters"] > 1e6 and c["cost"]["gflops"] > 0 and c["cost"]["images_per_s"] > 0
        assert c["cost"]["train_memory_mb"] > 0 and c["cost"]["finetune_minutes_estimate"] >= 0
    assert pretrained["pretrained"] and pretrained["weights"]["source"] == "file"
    assert 0 <= pretrained["similarity"]["score"] <= 1 and pretrained["similarity"]["imagenet_head"]["top_classes"]
    assert scratch["similarity"]["score"] is None and not scratch["pretrained"]
    rec = report["recommendation"]
    assert set(rec) >= {"backbone", "technique", "strategy", "command", "reasons", "inputs", "ranking", "warnings"}
    assert rec["technique"] in ("feature-extraction", "fine-tuning") and rec["command"].startswith("tl train --preset")
    assert rec["inputs"]["images_per_class_min"] == 10 and "thresholds" in rec["inputs"]
    assert sorted(rec["ranking"]) == sorted(names)
    assert "Recommendation" in err  # the table and the advice go to the terminal (stderr console)
