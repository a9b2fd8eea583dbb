"""Files tlcore reads back never run code: resume state, feature cache, weights (see also test_weights.py,
test_bad_input.py and test_catalog.py for weights, manifest/catalogue paths and download checksums)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from tests.test_cache_command import feature_cache_entry
from tlcore.config import RunConfig
from tlcore.training import features

Tl = Callable[..., tuple[int, str, str]]


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def test_the_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    # The control: the files below would run code if anything unpickled them.
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


def test_resume_from_a_state_file_carrying_code_is_refused(
    tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    data = make_folder(tmp_path / "data", {"train": 3, "val": 1, "test": 1})
    run = tmp_path / "run"
    run.mkdir()
    config = RunConfig(backbone="test_resnet", weights="none", strategy="full", image_size=32, progress=False)
    (run / "config.yaml").write_text(
        yaml.safe_dump({"preset": "fine-tuning", "data": str(data), "config": config.model_dump()})
    )
    marker = tmp_path / "code-ran"
    torch.save({"epoch": 1, "optimizer": Payload(marker)}, run / "checkpoint_state.pt")
    code, _, err = tl("train", "--resume", run)
    assert code == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: cannot resume from")
    assert "not a plain checkpoint" in err
    assert not marker.exists()


def test_a_pickled_feature_cache_entry_is_not_loaded_but_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, records, entry = feature_cache_entry(tmp_path)
    marker = tmp_path / "code-ran"
    np.save(entry, np.array([Payload(marker)], dtype=object), allow_pickle=True)  # a planted pickle
    monkeypatch.setattr(features, "compute_features", lambda *a, **k: np.ones((1, 4), dtype=np.float32))

    out = cache.extract(torch.nn.Identity(), records, None, torch.device("cpu"), 1)  # type: ignore[arg-type]
    assert not out.cached
    assert not marker.exists()
    assert np.load(entry, allow_pickle=False).tolist() == [[1.0, 1.0, 1.0, 1.0]]  # replaced by real features
