"""Standard classifier heads: torch modules and scikit-learn estimators."""

from __future__ import annotations

from typing import Any

from torch import nn

from tlcore.specs import HeadContext


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
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = {"C": 0.5, "max_iter": 2000, **_sklearn_params(ctx, {"C", "max_iter", "class_weight"})}
    return make_pipeline(StandardScaler(), LogisticRegression(**params))


def svm_head(ctx: HeadContext) -> Any:
    """Standardised features -> RBF SVM with probability estimates."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    params = {"C": 1.0, "kernel": "rbf", **_sklearn_params(ctx, {"C", "kernel", "gamma", "class_weight"})}
    return make_pipeline(StandardScaler(), SVC(probability=True, random_state=0, **params))
