"""Stratified, seeded subsamples of a split: the advisor's bounded budget and compare's label fractions."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tlcore.specs import Record


def _by_class(records: Sequence[Record]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[int(r.target)].append(i)  # type: ignore[arg-type]
    return dict(sorted(groups.items()))


def class_counts(records: Sequence[Record]) -> dict[int, int]:
    return {k: len(v) for k, v in _by_class(records).items()}


def stratified_subsample(records: Sequence[Record], n: int, seed: int = 0) -> list[Record]:
    """At most ``n`` records with the class proportions of ``records`` (largest remainders), every
    class kept with at least one image; in the original order, so the result is deterministic."""
    if n >= len(records):
        return list(records)
    groups = _by_class(records)
    n = max(n, len(groups))
    shares = {k: n * len(v) / len(records) for k, v in groups.items()}
    take = {k: max(1, math.floor(s)) for k, s in shares.items()}
    by_remainder = sorted(groups, key=lambda k: (shares[k] - math.floor(shares[k]), -k), reverse=True)
    for k in by_remainder:
        if sum(take.values()) >= n:
            break
        if take[k] < len(groups[k]):
            take[k] += 1
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for k, idx in groups.items():
        keep.extend(rng.permutation(idx)[: take[k]].tolist())
    return [records[i] for i in sorted(keep)]


def nested_fractions(records: Sequence[Record], fractions: Sequence[float], seed: int) -> dict[float, list[Record]]:
    """One stratified subset per label fraction, nested (a larger fraction contains every smaller one),
    so a learning curve measures more labels rather than different labels. Each class keeps
    ``ceil(fraction * count)`` images, at least one."""
    rng = np.random.default_rng(seed)
    orders = {k: rng.permutation(idx).tolist() for k, idx in _by_class(records).items()}
    out: dict[float, list[Record]] = {}
    for f in fractions:
        keep: list[int] = []
        for idx in orders.values():
            keep.extend(idx[: max(1, math.ceil(f * len(idx) - 1e-9))])
        out[f] = [records[i] for i in sorted(keep)]
    return out
