"""Default heads: linear and MLP (torch), logistic regression and SVM (scikit-learn)."""

from __future__ import annotations

from collections.abc import Callable

from tlcore import hookimpl
from tlcore.models import heads
from tlcore.specs import Head


@hookimpl
def register_heads(register: Callable[[Head], None]) -> None:
    register(
        Head("linear", "dropout + linear layer (torch; feature extraction and fine-tuning)", "torch", heads.linear_head)
    )
    register(Head("mlp", "two-layer MLP with dropout (torch; params: hidden, dropout)", "torch", heads.mlp_head))
    register(
        Head(
            "logistic-regression",
            "standardised features + L2 logistic regression (scikit-learn; param C)",
            "sklearn",
            heads.logistic_regression_head,
        )
    )
    register(Head("svm", "standardised features + RBF SVM (scikit-learn; params C, gamma)", "sklearn", heads.svm_head))
