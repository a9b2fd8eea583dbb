"""``tl cache``: sizes per cache, and clearing one kind without touching the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

Tl = Callable[..., tuple[int, str, str]]


def test_show_and_clear(tl: Tl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("TLCORE_CACHE", str(root))
    (root / "decoded" / "entry1").mkdir(parents=True)
    (root / "decoded" / "entry1" / "pixels.u8").write_bytes(b"x" * 3 * 2**20)
    (root / "features" / "model").mkdir(parents=True)
    (root / "features" / "model" / "a.npy").write_bytes(b"y" * 1000)

    code, out, _ = tl("cache", "--json")
    assert code == 0
    kinds = json.loads(out)["kinds"]
    assert kinds["decoded"] == {"path": str(root / "decoded"), "entries": 1, "bytes": 3 * 2**20}
    assert kinds["features"]["bytes"] == 1000 and kinds["weights"]["entries"] == 0

    code, out, _ = tl("cache")
    assert code == 0 and "decoded" in out and "3.0 MiB" in out

    code, out, _ = tl("cache", "clear", "decoded")
    assert code == 0 and "cleared decoded: 3.0 MiB" in out
    assert not (root / "decoded").exists() and (root / "features" / "model" / "a.npy").exists()

    code, _, err = tl("cache", "clear")
    assert code == 2 and err.count("\n") == 1 and "needs a kind" in err


# -- a damaged feature-cache entry ----------------------------------------------------------------


def test_cached_features_of_the_wrong_shape_are_recomputed_with_a_warning(
    tl: Tl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_folder: Callable[..., Path]
) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("TLCORE_CACHE", str(root))
    data = make_folder(tmp_path / "data", {"train": 3, "val": 1, "test": 1})
    fast = ["--set", "image_size=32", "--set", "batch_size=8", "--set", "progress=false", "--set", "shift_check=false"]

    def train(run: str) -> tuple[str, dict[str, Any]]:
        code, _, err = tl("train", "--preset", "feature-extraction", "--data", data, "--output", tmp_path / run, *fast)
        assert code == 0, err
        return err, json.loads((tmp_path / run / "report.json").read_text())

    train("first")
    entries = sorted((root / "features").glob("*/*.npy"))
    good = {path: np.load(path).shape for path in entries}
    assert sorted(rows for rows, _ in good.values()) == [3, 3, 9] and {width for _, width in good.values()} == {1280}
    # Valid .npy headers, wrong shapes: other rows and width; the right rows but another backbone's width.
    damaged = {entries[0]: np.zeros((2, 5), np.float32), entries[1]: np.zeros((good[entries[1]][0], 7), np.float32)}
    for path, array in damaged.items():
        np.save(path, array)

    err, report = train("second")
    warnings = [line for line in err.splitlines() if line.startswith("warning: cached features")]
    assert len(warnings) == 2, err
    for path, array in damaged.items():
        assert any(str(path) in w and f"shape {array.shape}" in w and "computing them again" in w for w in warnings)
    assert {path: np.load(path).shape for path in entries} == good  # replaced: later runs read them again
    assert len(report["timing"].get("feature_cache_hits", [])) == 1


def feature_cache_entry(tmp_path: Path) -> tuple[Any, list[Any], Path]:
    """A feature cache with one image's key: (cache, records, the path its entry will have)."""
    from tlcore.data import digests
    from tlcore.specs import Record
    from tlcore.training import features

    image = tmp_path / "a.png"
    image.write_bytes(b"bytes that key the cache")
    records = [Record(str(image), 0)]
    cache = features.FeatureCache(tmp_path / "cache", {"model": "x"})
    entry = cache.dir / f"{digests.content_key(records)}.npy"
    entry.parent.mkdir(parents=True)
    return cache, records, entry


def test_a_damaged_feature_entry_that_cannot_be_replaced_names_tl_cache_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcore.errors import StorageError
    from tlcore.training import features

    cache, records, entry = feature_cache_entry(tmp_path)
    np.save(entry, np.zeros((4, 2), np.float32))  # four rows for one image
    monkeypatch.setattr(features, "compute_features", lambda *a, **k: np.ones((1, 2), dtype=np.float32))

    def read_only(*_: Any) -> None:
        raise StorageError(f"could not write {entry}: Read-only file system", "write elsewhere")

    monkeypatch.setattr(features.io_atomic, "numpy_save", read_only)
    with pytest.raises(StorageError) as info:
        cache.extract(torch.nn.Identity(), records, None, torch.device("cpu"), 1)  # type: ignore[arg-type]
    assert str(entry) in info.value.message and "shape (4, 2)" in info.value.message
    assert info.value.hint is not None and "tl cache clear features" in info.value.hint


def test_cached_features_of_another_dtype_or_rank_are_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcore.training import features

    cache, records, entry = feature_cache_entry(tmp_path)
    monkeypatch.setattr(features, "compute_features", lambda *a, **k: np.ones((1, 2), dtype=np.float32))
    for wrong in (np.array(["text"]), np.zeros((1, 2, 2), np.float32), np.zeros(1, np.float32)):
        np.save(entry, wrong)
        out = cache.extract(torch.nn.Identity(), records, None, torch.device("cpu"), 1)  # type: ignore[arg-type]
        assert not out.cached and out.features.tolist() == [[1.0, 1.0]]
    assert cache.extract(torch.nn.Identity(), records, None, torch.device("cpu"), 1).cached  # type: ignore[arg-type]
