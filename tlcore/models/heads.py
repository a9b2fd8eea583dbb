"""Standard heads: torch modules (every task) and scikit-learn estimators (each for the tasks it fits).

Torch heads output ``num_outputs`` units: class logits, per-label logits or standardised values.
A scikit-learn head is built for one problem: multi-class, one binary label (the engine fits one per
label for multilabel tasks) or one standardised target (one per target for regression).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tlcore.errors import ConfigError
from tlcore.specs import HeadContext

CLASSIFIER_TASKS = frozenset({"classification", "multilabel"})


def require_task(ctx: HeadContext, head: str, tasks: frozenset[str], hint: str) -> None:
    """A one-line error when a head is asked for a task it cannot learn."""
    if ctx.task not in tasks:
        raise ConfigError(f"head {head!r} does not support task {ctx.task!r}", hint)


def linear_head(ctx: HeadContext) -> nn.Module:
    """Dropout then one linear layer (the classic transfer-learning head)."""
    dropout = float(ctx.params.get("dropout", 0.0))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(ctx.in_features, ctx.num_outputs))


def mlp_head(ctx: HeadContext) -> nn.Module:
    """Linear -> GELU -> dropout -> linear; ``hidden`` sets the width (default 512)."""
    hidden = int(ctx.params.get("hidden", 512))
    dropout = float(ctx.params.get("dropout", 0.2))
    return nn.Sequential(
        nn.Dropout(dropout / 2),
        nn.Linear(ctx.in_features, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, ctx.num_outputs),
    )


def _sklearn_params(ctx: HeadContext, allowed: set[str]) -> dict[str, Any]:
    # "dropout" is passed to every head by the engine; estimators ignore it.
    return {k: v for k, v in ctx.params.items() if k in allowed}


def logistic_regression_head(ctx: HeadContext) -> Any:
    """Standardised features -> multinomial logistic regression (L2, ``C`` = 1/strength)."""
    require_task(ctx, "logistic-regression", CLASSIFIER_TASKS, "for regression use head=ridge, linear or mlp")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {"C": 0.5, "max_iter": 2000, **_sklearn_params(ctx, {"C", "max_iter", "class_weight"})}
    return make_pipeline(StandardScaler(), LogisticRegression(**params))


def svm_head(ctx: HeadContext) -> Any:
    """Standardised features -> RBF SVM with probability estimates."""
    require_task(ctx, "svm", CLASSIFIER_TASKS, "for regression use head=ridge, linear or mlp")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    params = {"C": 1.0, "kernel": "rbf", **_sklearn_params(ctx, {"C", "kernel", "gamma", "class_weight"})}
    return make_pipeline(StandardScaler(), SVC(probability=True, random_state=0, **params))


def ridge_head(ctx: HeadContext) -> Any:
    """Standardised features -> ridge regression for regression targets.

    ``alpha`` (L2 strength) is chosen by efficient leave-one-out over a log grid unless given.
    """
    require_task(
        ctx, "ridge", frozenset({"regression"}), "for classification use head=logistic-regression, svm, linear or mlp"
    )
    import numpy as np
    from sklearn.linear_model import Ridge, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = _sklearn_params(ctx, {"alpha"})
    model = Ridge(**params) if "alpha" in params else RidgeCV(alphas=np.logspace(-2, 5, 15))
    return make_pipeline(StandardScaler(), model)
