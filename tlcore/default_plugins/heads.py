"""Default heads: linear and MLP (torch, every task), logistic regression and SVM (scikit-learn,
classification and multilabel), ridge (scikit-learn, regression)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tlcore import hookimpl
from tlcore.specs import Head, HeadContext


def _lazy(name: str) -> Callable[[HeadContext], Any]:
    def build(ctx: HeadContext) -> Any:
        from tlcore.models import heads

        return getattr(heads, name)(ctx)

    return build


@hookimpl
def register_heads(register: Callable[[Head], None]) -> None:
    register(
        Head(
            "linear",
            "dropout + linear layer (torch; feature extraction and fine-tuning; every task)",
            "torch",
            _lazy("linear_head"),
        )
    )
    register(
        Head(
            "mlp", "two-layer MLP with dropout (torch; every task; params: hidden, dropout)", "torch", _lazy("mlp_head")
        )
    )
    register(
        Head(
            "logistic-regression",
            "standardised features + L2 logistic regression (scikit-learn; classification, multilabel; param C)",
            "sklearn",
            _lazy("logistic_regression_head"),
        )
    )
    register(
        Head(
            "svm",
            "standardised features + RBF SVM (scikit-learn; classification, multilabel; params C, gamma)",
            "sklearn",
            _lazy("svm_head"),
        )
    )
    register(
        Head(
            "ridge",
            "standardised features + ridge regression (scikit-learn; regression; param alpha)",
            "sklearn",
            _lazy("ridge_head"),
        )
    )
