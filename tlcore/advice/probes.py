"""Cross-validated probes on frozen features: how well a linear head and a nearest-neighbour vote do.

Both are fit only on training folds of the bounded subsample, with stratified k-fold splits, so
the mean accuracy is an honest estimate and its standard error says when two backbones tie.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeScore:
    accuracy: float  # mean over folds
    std_error: float  # standard error of that mean
    folds: int
    seconds: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "accuracy": round(self.accuracy, 4),
            "std_error": round(self.std_error, 4),
            "folds": self.folds,
            "seconds": round(self.seconds, 2),
        }


def n_folds(targets: np.ndarray, wanted: int = 5) -> int:
    """As many folds as wanted, but no more than the smallest class has images (0 = cannot probe)."""
    present = np.bincount(targets)
    smallest = int(present[present > 0].min()) if present.any() else 0
    folds = min(wanted, smallest)
    return folds if folds >= 2 else 0


def _cross_validate(estimator: object, x: np.ndarray, y: np.ndarray, folds: int, seed: int) -> ProbeScore:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    start = time.perf_counter()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny folds say nothing the score does not
        scores = cross_val_score(estimator, x, y, cv=cv, scoring="accuracy")
    return ProbeScore(
        accuracy=float(scores.mean()),
        std_error=float(scores.std(ddof=1) / np.sqrt(folds)) if folds > 1 else 0.0,
        folds=folds,
        seconds=time.perf_counter() - start,
    )


def linear_probe(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, c: float = 1.0) -> ProbeScore | None:
    """Multinomial logistic regression on standardised features (the feature-extraction preset's head)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    k = n_folds(y, folds)
    if not k:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
    return _cross_validate(model, x, y, k, seed)


def knn_probe(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, neighbours: int = 20) -> ProbeScore | None:
    """A distance-weighted vote of the nearest neighbours in cosine distance (the k-NN protocol of
    self-supervised learning papers, e.g. Caron et al. 2021, with k = 20 or fewer on small folds)."""
    from sklearn.neighbors import KNeighborsClassifier

    k = n_folds(y, folds)
    if not k:
        return None
    smallest_train_fold = len(y) - int(np.ceil(len(y) / k))
    model = KNeighborsClassifier(
        n_neighbors=max(1, min(neighbours, smallest_train_fold)), metric="cosine", weights="distance"
    )
    return _cross_validate(model, x, y, k, seed)
