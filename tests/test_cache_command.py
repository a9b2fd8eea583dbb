"""``tl cache``: sizes per cache, and clearing one kind without touching the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

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
