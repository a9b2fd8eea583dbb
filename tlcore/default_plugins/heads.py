"""Default heads: linear and MLP (torch), logistic regression and SVM (scikit-learn)."""

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
            "dropout + linear layer (torch; feature extraction and fine-tuning)",
            "torch",
            _lazy("linear_head"),
        )
    )
    register(Head("mlp", "two-layer MLP with dropout (torch; params: hidden, dropout)", "torch", _lazy("mlp_head")))
    register(
        Head(
            "logistic-regression",
            "standardised features + L2 logistic regression (scikit-learn; param C)",
            "sklearn",
            _lazy("logistic_regression_head"),
        )
    )
    register(
        Head("svm", "standardised features + RBF SVM (scikit-learn; params C, gamma)", "sklearn", _lazy("svm_head"))
    )
