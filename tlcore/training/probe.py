"""Training heads on cached features (linear probing): seconds instead of minutes."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tlcore.config import RunConfig
from tlcore.models.objective import Objective
from tlcore.models.transfer import EstimatorHead, positive_proba


@dataclass
class ProbeResult:
    head: nn.Module | None  # the torch head (linear scikit-learn heads are converted to one)
    estimator: Any | None  # fitted scikit-learn head(s) with no exact torch equivalent
    epoch_seconds: float | None  # one pass over the training features (torch heads)
    fit_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    objective: Objective | None = None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Outputs in the user's units: class or per-label probabilities, regression values."""
        objective = self.objective
        if self.head is not None:
            self.head.eval()
            with torch.inference_mode():
                logits = self.head(torch.from_numpy(features).float())
            if objective is None:
                return torch.softmax(logits, dim=1).numpy()
            return objective.to_units(objective.activate(logits).numpy())
        assert self.estimator is not None
        if objective is None or objective.task == "classification":
            return np.asarray(self.estimator.predict_proba(features))
        with torch.inference_mode():
            logits = EstimatorHead(self.estimator, objective.task)(torch.from_numpy(features).float())
        return objective.to_units(objective.activate(logits).numpy())

    predict = predict_proba


def class_weights(targets: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(targets, minlength=k).astype(np.float64)
    return len(targets) / (k * np.maximum(counts, 1))


def fit_torch_head(
    head: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    classes: list[str],
    config: RunConfig,
    objective: Objective | None = None,
) -> ProbeResult:
    """AdamW + cosine on features; keeps the epoch with the best validation ``monitor``.

    ``y_train``/``y_val`` are in the targets' own units; regression targets are standardised here.
    """
    if objective is None:
        objective = Objective.for_training("classification", classes, config, y_train)
    gen = torch.Generator().manual_seed(config.seed)
    xt, yt = torch.from_numpy(x_train).float(), torch.from_numpy(objective.fit_targets(y_train))
    xv = torch.from_numpy(x_val).float()
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.head_epochs)
    batch = min(256, len(xt))
    best_score, best_state, history = -np.inf, copy.deepcopy(head.state_dict()), []
    start = time.perf_counter()
    epoch_times = []
    for epoch in range(config.head_epochs):
        t0 = time.perf_counter()
        head.train()
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = order[i : i + batch]
            loss = objective.loss(head(xt[idx]), yt[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        scheduler.step()
        epoch_times.append(time.perf_counter() - t0)
        head.eval()
        with torch.inference_mode():
            outputs = objective.to_units(objective.activate(head(xv)).numpy())
        metrics = objective.metrics(y_val, outputs)
        score = objective.score(metrics)
        history.append({"epoch": epoch + 1, "train_loss": total / len(xt), **objective.history_row(metrics)})
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return ProbeResult(head, None, float(np.median(epoch_times)), time.perf_counter() - start, history, objective)


def fit_sklearn_head(
    estimator: Any, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, objective: Objective | None = None
) -> ProbeResult:
    """Fit a scikit-learn head; multilabel and regression fit one clone per label/target on its known rows."""
    start = time.perf_counter()
    task = objective.task if objective is not None else "classification"
    if task == "classification":
        estimator.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        linear = sklearn_to_linear(estimator, x_train.shape[1], num_classes)
        return ProbeResult(linear, None if linear is not None else estimator, None, seconds, objective=objective)
    assert objective is not None
    y = objective.fit_targets(y_train)
    fitted = [_fit_column(estimator, x_train, y[:, j], task) for j in range(y.shape[1])]
    seconds = time.perf_counter() - start
    linear = columns_to_linear(fitted, x_train.shape[1])
    return ProbeResult(linear, None if linear is not None else fitted, None, seconds, objective=objective)


def _fit_column(estimator: Any, x: np.ndarray, y: np.ndarray, task: str) -> Any:
    from sklearn.base import clone
    from sklearn.dummy import DummyClassifier, DummyRegressor

    known = ~np.isnan(y)
    x, y = x[known], y[known]
    if task == "multilabel":
        labels = y.astype(int)
        if len(np.unique(labels)) < 2:  # one class only (or no known label): predict its prior
            return DummyClassifier(strategy="prior").fit(
                np.zeros((max(1, len(labels)), 1)), labels if len(labels) else [0]
            )
        return clone(estimator).fit(x, labels)
    if not len(y):
        return DummyRegressor(strategy="constant", constant=0.0).fit(np.zeros((1, 1)), [0.0])
    return clone(estimator).fit(x, y)


def _scaled_linear(estimator: Any, in_features: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``StandardScaler`` + a linear model (coef_, intercept_) as one affine map ``W x + b``, or None."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline):
        return None
    steps = [s for _, s in estimator.steps]
    if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not hasattr(steps[1], "coef_"):
        return None
    scaler, model = steps
    mean = np.asarray(scaler.mean_ if scaler.with_mean else np.zeros(in_features))
    scale = np.asarray(scaler.scale_ if scaler.with_std else np.ones(in_features))
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    weight = coef / scale
    return weight, intercept - weight @ mean


def _linear_layer(weight: np.ndarray, bias: np.ndarray) -> nn.Module:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight).float())
        layer.bias.copy_(torch.from_numpy(bias).float())
    return nn.Sequential(nn.Dropout(0.0), layer)  # the layout of the "linear" head


def sklearn_to_linear(estimator: Any, in_features: int, num_classes: int) -> nn.Module | None:
    """StandardScaler + LogisticRegression is exactly one linear layer; fold it into one.

    That makes the saved model a plain backbone + linear head (safetensors, exportable), and
    its softmax equals ``predict_proba``.
    """
    from sklearn.linear_model import LogisticRegression

    affine = _scaled_linear(estimator, in_features)
    if affine is None or not isinstance(estimator.steps[-1][1], LogisticRegression):
        return None
    weight, bias = affine
    if weight.shape[0] == 1 and num_classes == 2:  # binary: logits [0, z] give softmax = sigmoid(z)
        weight = np.vstack([np.zeros_like(weight), weight])
        bias = np.concatenate([[0.0], bias])
    return _linear_layer(weight, bias)


def columns_to_linear(estimators: list[Any], in_features: int) -> nn.Module | None:
    """Per-label binary logistic regressions (their logits) or per-target linear regressors (their
    predictions) as one linear layer with a row each; None when any of them is not linear."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for est in estimators:
        if isinstance(est, DummyClassifier):
            p = float(np.clip(positive_proba(est, np.zeros((1, 1)))[0], 1e-4, 1 - 1e-4))
            rows.append((np.zeros((1, in_features)), np.array([np.log(p / (1 - p))])))
            continue
        if isinstance(est, DummyRegressor):
            rows.append((np.zeros((1, in_features)), np.atleast_1d(np.asarray(est.constant_, dtype=np.float64))[:1]))
            continue
        affine = _scaled_linear(est, in_features)
        if affine is None or affine[0].shape[0] != 1:
            return None
        rows.append(affine)
    return _linear_layer(np.vstack([w for w, _ in rows]), np.concatenate([b for _, b in rows]))
