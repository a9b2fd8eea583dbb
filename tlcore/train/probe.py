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
from tlcore.metrics.classification import classification_metrics, monitor_value


@dataclass
class ProbeResult:
    head: nn.Module | None  # the torch head (sklearn logistic regression is converted to one)
    estimator: Any | None  # a fitted scikit-learn head that has no exact torch equivalent
    epoch_seconds: float | None  # one pass over the training features (torch heads)
    fit_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if self.head is not None:
            self.head.eval()
            with torch.inference_mode():
                logits = self.head(torch.from_numpy(features).float())
            return torch.softmax(logits, dim=1).numpy()
        assert self.estimator is not None
        return np.asarray(self.estimator.predict_proba(features))


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
) -> ProbeResult:
    """AdamW + cosine on features; keeps the epoch with the best validation ``monitor``."""
    gen = torch.Generator().manual_seed(config.seed)
    xt, yt = torch.from_numpy(x_train).float(), torch.from_numpy(y_train).long()
    xv = torch.from_numpy(x_val).float()
    weight = (
        torch.tensor(class_weights(y_train, len(classes)), dtype=torch.float32)
        if config.class_weights == "balanced"
        else None
    )
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)
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
            loss = loss_fn(head(xt[idx]), yt[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        scheduler.step()
        epoch_times.append(time.perf_counter() - t0)
        head.eval()
        with torch.inference_mode():
            proba = torch.softmax(head(xv), dim=1).numpy()
        metrics = classification_metrics(y_val, proba, classes)
        score = monitor_value(metrics, config.monitor)
        history.append({"epoch": epoch + 1, "train_loss": total / len(xt), "val_accuracy": metrics["accuracy"]})
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return ProbeResult(head, None, float(np.median(epoch_times)), time.perf_counter() - start, history)


def fit_sklearn_head(estimator: Any, x_train: np.ndarray, y_train: np.ndarray, num_classes: int) -> ProbeResult:
    start = time.perf_counter()
    estimator.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    linear = sklearn_to_linear(estimator, x_train.shape[1], num_classes)
    return ProbeResult(linear, None if linear is not None else estimator, None, seconds)


def sklearn_to_linear(estimator: Any, in_features: int, num_classes: int) -> nn.Module | None:
    """StandardScaler + LogisticRegression is exactly one linear layer; fold it into one.

    That makes the saved model a plain backbone + linear head (safetensors, exportable), and
    its softmax equals ``predict_proba``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline):
        return None
    steps = [s for _, s in estimator.steps]
    if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not isinstance(steps[1], LogisticRegression):
        return None
    scaler, lr = steps
    mean = np.asarray(scaler.mean_ if scaler.with_mean else np.zeros(in_features))
    scale = np.asarray(scaler.scale_ if scaler.with_std else np.ones(in_features))
    coef, intercept = np.asarray(lr.coef_), np.asarray(lr.intercept_)
    if coef.shape[0] == 1 and num_classes == 2:  # binary: logits [0, z] give softmax = sigmoid(z)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    weight = coef / scale
    bias = intercept - weight @ mean
    layer = nn.Linear(in_features, num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight).float())
        layer.bias.copy_(torch.from_numpy(bias).float())
    return nn.Sequential(nn.Dropout(0.0), layer)
