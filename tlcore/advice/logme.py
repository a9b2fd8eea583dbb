"""LogME: the log marginal evidence of a Bayesian linear model on frozen features.

You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021 (arXiv:2102.11005), and the fixed-point solver of their journal version
(You et al., JMLR 2022, arXiv:2110.10545). For each class c, the one-hot target y_c is modelled as
``y_c = F w + noise`` with ``w ~ N(0, 1/alpha I)`` and noise precision ``beta``; alpha and beta
maximise the evidence ``p(y_c | F)`` by a fixed-point iteration, and the score is the mean over
classes of the maximised log evidence divided by N. Higher means the features explain the
labels linearly with less complexity: a transferability score that needs no training.

Everything is expressed through one thin SVD of F (N x D), vectorised over classes. The log
determinant counts the ``D - rank`` zero singular values (they contribute ``log alpha`` each),
which matters in the usual N < D regime of a bounded subsample.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-5  # as in the reference implementation: keeps alpha, beta finite on perfect fits


def _left_singular(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and squared singular values of F (numerically zero ones dropped), from
    the eigendecomposition of the smaller Gram matrix: the same thin SVD, several times faster."""
    n, d = f.shape
    small_side = f @ f.T if n <= d else f.T @ f
    sig, vecs = np.linalg.eigh(small_side)
    keep = sig > sig.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
    sig = sig[keep]
    if n <= d:
        return vecs[:, keep], sig
    return f @ vecs[:, keep] / np.sqrt(sig), sig


def logme(features: np.ndarray, targets: np.ndarray, max_iter: int = 100, tol: float = 1e-3) -> float:
    """Mean LogME over classes of ``features`` (N x D) for integer ``targets`` (N,)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) != len(targets):
        raise ValueError(f"features {f.shape} do not match {len(targets)} targets")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    n, d = f.shape
    classes = np.unique(targets)
    y = (np.asarray(targets)[:, None] == classes[None, :]).astype(np.float64)  # N x C one-hot
    u, sig = _left_singular(f)
    sigma = sig[:, None]  # k x 1: the non-zero eigenvalues of F^T F (squared singular values)
    x2 = (u.T @ y) ** 2  # k x C: squared projections of the targets on the left singular vectors
    res_x2 = (y**2).sum(0) - x2.sum(0)  # the part of y outside F's column space
    rank_deficit = d - len(sig)

    alpha = np.ones(y.shape[1])
    beta = np.ones(y.shape[1])
    for _ in range(max_iter):
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum(0)  # effective number of parameters
        m2 = (sigma * x2 / (sigma + t) ** 2).sum(0)  # |m|^2, m the posterior mean of w
        res2 = (x2 / (1 + sigma / t) ** 2).sum(0) + res_x2  # |y - F m|^2
        alpha = gamma / (m2 + _EPS)
        beta = (n - gamma) / (res2 + _EPS)
        if np.all(np.abs(alpha / beta - t) / t <= tol):
            break
    t = alpha / beta
    m2 = (sigma * x2 / (sigma + t) ** 2).sum(0)
    res2 = (x2 / (1 + sigma / t) ** 2).sum(0) + res_x2
    log_det = np.log(alpha + beta * sigma).sum(0) + rank_deficit * np.log(alpha)
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * log_det
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )
    return float(np.mean(evidence / n))
