"""The decoded-image cache: decode once, read back identical pixels, rebuild when anything changes."""

from __future__ import annotations

import functools
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tlcore.data import decoded_cache
from tlcore.data.decoded_cache import PIXELS, DecodedReader, decoded_reader, reader_identity, shrink
from tlcore.specs import Record, read_rgb


def _write(folder: Path) -> list[Record]:
    """Photos of three shapes (one wider, one taller, one small) and a grey image stored as RGB."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, (h, w) in enumerate([(120, 200), (210, 90), (40, 50)]):
        path = folder / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        records.append(Record(str(path), i % 2))
    grey = rng.integers(0, 256, (150, 150), dtype=np.uint8)
    Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2)).save(folder / "grey.png")
    records.append(Record(str(folder / "grey.png"), 0))
    return records


@dataclass(frozen=True)
class CountingReader:
    """A reader with a stable identity that counts its decodes (in this process)."""

    calls: list[str]

    @property
    def cache_key(self) -> str:
        return "counting-reader"

    def __call__(self, path: str) -> np.ndarray:
        self.calls.append(path)
        return read_rgb(path)


def _float_reader(path: str) -> np.ndarray:
    return read_rgb(path).astype(np.float32)


def test_reader_identity_trusts_only_readers_whose_settings_it_can_see() -> None:
    def closure(path: str) -> np.ndarray:
        return read_rgb(path)

    class Opaque:
        def __call__(self, path: str) -> np.ndarray:
            return read_rgb(path)

    assert reader_identity(read_rgb) == "tlcore.specs.read_rgb"
    assert reader_identity(closure) is None
    assert reader_identity(lambda p: read_rgb(p)) is None
    assert reader_identity(Opaque()) is None  # its repr is a memory address
    window = functools.partial(shrink, short_side=100)
    assert reader_identity(window) != reader_identity(functools.partial(shrink, short_side=200))
    assert reader_identity(CountingReader([])) == "counting-reader"


def test_shrink_keeps_aspect_and_never_enlarges() -> None:
    wide = np.zeros((300, 500, 3), np.uint8)
    assert shrink(wide, 150).shape == (150, 250, 3)
    assert shrink(wide.transpose(1, 0, 2), 150).shape == (250, 150, 3)
    assert shrink(np.zeros((100, 80, 1), np.uint8), 150).shape == (100, 80, 1)
    assert shrink(np.zeros((400, 400, 1), np.uint8), 100).shape == (100, 100, 1)


def test_cached_pixels_equal_the_shrunk_decode_and_grey_is_stored_once(tmp_path: Path) -> None:
    records = _write(tmp_path / "images")
    cached = decoded_reader(records, read_rgb, tmp_path / "cache", short_side=100, show_progress=False)
    assert cached is not None
    for record in records:
        expected = shrink(read_rgb(record.path), 100)
        got = cached(record.path)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    # 100x166 + 100x(233 -> kept by short side 90) ... measured from the shapes: the grey image takes 1 channel
    stored = {Path(p).name: cached.shapes[i] for p, i in cached.rows.items()}
    assert stored["grey.png"] == (100, 100, 1, 3)
    assert stored["photo2.png"] == (40, 50, 3, 3)  # smaller than the short side: kept as it is
    assert (cached.folder / PIXELS).stat().st_size == cached.nbytes
    # a path outside the entry is decoded by the dataset's reader
    outside = tmp_path / "other.png"
    shutil.copy(records[0].path, outside)
    np.testing.assert_array_equal(cached(str(outside)), read_rgb(str(outside)))


def test_second_use_reads_the_cache_and_an_edited_image_builds_a_new_entry(tmp_path: Path) -> None:
    records = _write(tmp_path / "images")
    calls: list[str] = []
    reader = CountingReader(calls)
    first = decoded_reader(records, reader, tmp_path / "cache", 64, show_progress=False)
    assert first is not None and len(calls) == len(records) + 1  # +1: the dtype probe
    calls.clear()
    again = decoded_reader(records, reader, tmp_path / "cache", 64, show_progress=False)
    assert again is not None and again.folder == first.folder and calls == []
    for record in records:
        again(record.path)
    assert calls == []  # no decoding at all

    Image.fromarray(np.full((120, 200, 3), 7, np.uint8)).save(records[0].path)
    edited = decoded_reader(records, reader, tmp_path / "cache", 64, show_progress=False)
    assert edited is not None and edited.folder != first.folder
    assert int(edited(records[0].path).max()) == 7
    other_size = decoded_reader(records, reader, tmp_path / "cache", 32, show_progress=False)
    assert other_size is not None and other_size.folder not in (first.folder, edited.folder)


def test_a_truncated_entry_is_rebuilt(tmp_path: Path) -> None:
    records = _write(tmp_path / "images")
    cached = decoded_reader(records, read_rgb, tmp_path / "cache", 64, show_progress=False)
    assert cached is not None
    with open(cached.folder / PIXELS, "r+b") as fh:
        fh.truncate(100)
    rebuilt = decoded_reader(records, read_rgb, tmp_path / "cache", 64, show_progress=False)
    assert rebuilt is not None and (rebuilt.folder / PIXELS).stat().st_size == rebuilt.nbytes
    np.testing.assert_array_equal(rebuilt(records[1].path), shrink(read_rgb(records[1].path), 64))


def test_float_readers_and_closures_are_not_cached(tmp_path: Path) -> None:
    records = _write(tmp_path / "images")
    assert decoded_reader(records, _float_reader, tmp_path / "cache", 64, show_progress=False) is None
    assert decoded_reader(records, lambda p: read_rgb(p), tmp_path / "cache", 64, show_progress=False) is None
    assert not any((tmp_path / "cache").glob("*/pixels.u8"))


def test_no_room_on_disk_skips_the_cache_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _write(tmp_path / "images")
    monkeypatch.setattr(decoded_cache.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 0))  # type: ignore[attr-defined]
    assert decoded_reader(records, read_rgb, tmp_path / "cache", 64, show_progress=False) is None
    assert "decoded-image cache skipped" in capsys.readouterr().err


def test_the_reader_pickles_without_its_memory_map_and_builds_on_threads(tmp_path: Path) -> None:
    records = _write(tmp_path / "images")
    cached = decoded_reader(records, read_rgb, tmp_path / "cache", 64, threads=2, show_progress=False)
    assert cached is not None
    cached(records[0].path)  # opens the map
    assert cached._pixels is not None
    clone: DecodedReader = pickle.loads(pickle.dumps(cached))
    assert clone._pixels is None
    np.testing.assert_array_equal(clone(records[3].path), cached(records[3].path))
    index = json.loads((cached.folder / "index.json").read_text())
    assert index["paths"] == [r.path for r in records]


def _run(tl: Callable[..., Any], data: Path, run: Path, fast: list[str], *extra: str) -> dict[str, Any]:
    code, _, err = tl(
        "train", "--preset", "fine-tuning", "--data", data, "--output", run, *fast,
        "--set", "epochs=1", "--set", "head_epochs=3", *extra,
    )  # fmt: skip
    assert code == 0, err
    report: dict[str, Any] = json.loads((run / "report.json").read_text())
    return report


def test_fine_tuning_through_the_cache_matches_decoding_every_epoch(
    small_folder: Path, tl: Callable[..., Any], tmp_path: Path, fast: list[str]
) -> None:
    # 48 px images and a 64 px model: the cache keeps them as they are, so every number must match.
    cached = _run(tl, small_folder, tmp_path / "cached", fast)
    plain = _run(tl, small_folder, tmp_path / "plain", fast, "--set", "decode_cache=false")
    info = cached["training"]["decoded_cache"]
    assert info["images"] == 24 and info["short_side"] == round(1.5 * 64 / 0.875)
    assert plain["training"]["decoded_cache"] is None
    assert cached["val"] == plain["val"] and cached["test"] == plain["test"]


def test_cold_and_warm_caches_give_the_same_run(
    small_folder: Path, tl: Callable[..., Any], tmp_path: Path, fast: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first run converts the weights and fills the feature and decoded-image caches; the second finds
    # them all. Building a cache must not draw from the run's random stream, or a rerun trains differently.
    monkeypatch.setenv("TLCORE_CACHE", str(tmp_path / "empty-cache"))
    cold = _run(tl, small_folder, tmp_path / "cold", fast)
    warm = _run(tl, small_folder, tmp_path / "warm", fast)
    # LP-FT extracts train and val for its probe, and test for the shift check
    assert "feature_cache_hits" not in cold["timing"]
    assert warm["timing"]["feature_cache_hits"] == ["train", "val", "test"]
    assert warm["training"]["decoded_cache"]["folder"] == cold["training"]["decoded_cache"]["folder"]
    assert cold["val"] == warm["val"] and cold["test"] == warm["test"]


def test_large_jpegs_decode_at_a_reduced_scale_that_still_covers_the_short_side(tmp_path: Path) -> None:
    from tlcore.images import read_image

    rng = np.random.default_rng(3)
    smooth = np.kron(rng.integers(0, 256, (20, 27, 3), dtype=np.uint8), np.ones((30, 30, 1), np.uint8))[:, :800]
    path = tmp_path / "photo.jpg"
    Image.fromarray(smooth).save(path, quality=95)  # 600 x 800
    assert read_image(str(path)).shape == (600, 800, 3)
    assert read_image(str(path), min_side=150).shape == (150, 200, 3)  # the DCT's 1/4 scale
    assert read_image(str(path), min_side=151).shape == (300, 400, 3)  # 1/4 would fall short: 1/2
    assert read_image(str(path), min_side=1000).shape == (600, 800, 3)  # never enlarged
    cached = decoded_reader([Record(str(path), 0)], read_rgb, tmp_path / "cache", 150, show_progress=False)
    assert cached is not None
    full = shrink(read_image(str(path)), 150).astype(float)
    got = cached(str(path))
    assert got.shape == (150, 200, 3) and np.abs(got - full).mean() < 3.0  # grey levels, out of 255
