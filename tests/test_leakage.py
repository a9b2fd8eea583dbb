"""Split leakage: shared groups, exact and near duplicate images across train/val/test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tlcore.data.image_folder import load as load_folder
from tlcore.data.leakage import find_leakage, perceptual_hash
from tlcore.specs import Record

Tl = Callable[..., tuple[int, str, str]]


def first(folder: Path) -> Path:
    return sorted(folder.glob("*.png"))[0]


def test_a_clean_generated_dataset_has_no_leakage(tiny_folder: Path) -> None:
    report = find_leakage(load_folder(tiny_folder, {}).splits)
    assert report.images_checked == 42
    assert not report.found
    assert report.summary() == "no split leakage"


def test_an_exact_copy_across_splits_is_reported_once(tiny_folder: Path) -> None:
    source = first(tiny_folder / "train" / "red")
    shutil.copy(source, tiny_folder / "test" / "red" / "copy.png")
    report = find_leakage(load_folder(tiny_folder, {}).splits)
    assert (report.exact, report.near, report.groups) == (1, 0, 0)
    example = report.exact_examples[0]
    assert example["a"] == f"train:{source}"
    assert example["b"].startswith("test:") and example["b"].endswith("copy.png")
    assert "1 exact duplicate pair(s) across splits" in report.summary()


def test_a_resized_recompressed_copy_is_a_near_duplicate(tiny_folder: Path) -> None:
    source = first(tiny_folder / "train" / "green")
    Image.open(source).resize((40, 40)).save(tiny_folder / "val" / "green" / "smaller.jpg", quality=70)
    report = find_leakage(load_folder(tiny_folder, {}).splits)
    assert (report.exact, report.near) == (0, 1)
    near = report.near_examples[0]
    assert near["a"] == f"train:{source}" and near["b"].endswith("smaller.jpg")
    assert 0 <= near["distance"] <= 4
    assert find_leakage(load_folder(tiny_folder, {}).splits, max_distance=None).near == 0


def test_duplicates_within_one_split_are_not_leakage(tiny_folder: Path) -> None:
    source = first(tiny_folder / "train" / "blue")
    shutil.copy(source, tiny_folder / "train" / "blue" / "again.png")
    assert not find_leakage(load_folder(tiny_folder, {}).splits).found


def test_groups_in_two_splits_are_counted_with_their_splits(tiny_folder: Path) -> None:
    paths = sorted(str(p) for p in (tiny_folder / "train" / "red").glob("*.png"))
    splits = {
        "train": [Record(paths[0], 0, "p1"), Record(paths[1], 0, "p2"), Record(paths[2], 0, "p3")],
        "val": [Record(paths[3], 0, "p4")],
        "test": [Record(paths[4], 0, "p1"), Record(paths[5], 0, "p2"), Record(paths[6], 0, "p1")],
    }
    report = find_leakage(splits)
    assert report.groups == 2
    assert report.group_examples[0] == {"group": "p1", "splits": {"train": 1, "test": 2}}
    assert report.summary().startswith("split leakage: 2 group(s) in more than one split; e.g. group 'p1'")


def test_near_duplicate_pairs_are_counted_beyond_the_examples(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, test = [], []
    for i in range(8):  # 8 distinct images, each with a slightly noisier twin in test
        base = rng.integers(0, 255, (8, 8, 3)).astype(np.float32).repeat(8, 0).repeat(8, 1)
        a, b = tmp_path / f"a{i}.png", tmp_path / f"b{i}.png"
        Image.fromarray(base.astype(np.uint8)).save(a)
        Image.fromarray(np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)).save(b)
        train.append(Record(str(a), 0))
        test.append(Record(str(b), 0))
    report = find_leakage({"train": train, "test": test})
    assert report.near == 8
    assert len(report.near_examples) == 5
    assert report.as_dict()["near_duplicates"]["count"] == 8


def test_unreadable_files_are_listed_not_compared(tiny_folder: Path) -> None:
    (tiny_folder / "test" / "red" / "broken.png").write_bytes(b"not an image")
    report = find_leakage(load_folder(tiny_folder, {}).splits)
    assert report.images_checked == 42
    assert len(report.unhashable) == 1 and "broken.png" in report.unhashable[0]


def test_custom_readers_are_hashed_through_the_reader(tmp_path: Path) -> None:
    array = np.random.default_rng(1).integers(0, 255, (32, 32, 1), dtype=np.uint8)
    calls: list[str] = []

    def reader(path: str) -> np.ndarray:
        calls.append(path)
        return array

    # Paths that are not files (a series folder, an id): both the exact and the perceptual hash use the reader.
    report = find_leakage({"train": [Record("series-1", 0)], "test": [Record("series-2", 0)]}, reader=reader)
    assert report.exact == 1
    assert set(calls) == {"series-1", "series-2"}
    assert perceptual_hash("x", reader) == perceptual_hash("y", reader)


# -- through the CLI ---------------------------------------------------------------------------


def test_strict_train_fails_in_one_line_before_writing_anything(
    tiny_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]
) -> None:
    shutil.copy(first(tiny_folder / "train" / "red"), tiny_folder / "test" / "red" / "copy.png")
    run = tmp_path / "run"
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder, "-o", run, "--strict", *fast)
    assert code == 2
    assert err.startswith("error: split leakage: 1 exact duplicate pair(s) across splits; e.g. train:")
    assert "drop --strict" in err
    assert len(err.strip().splitlines()) == 1
    assert not run.exists()
    # The config key does the same as the flag.
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder, "--set", "strict=true", *fast)
    assert code == 2 and "split leakage" in err


def test_leakage_is_a_warning_and_a_report_section_without_strict(
    tiny_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]
) -> None:
    shutil.copy(first(tiny_folder / "train" / "red"), tiny_folder / "test" / "red" / "copy.png")
    run = tmp_path / "run"
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder, "-o", run, *fast)
    assert code == 0, err
    assert "warning: split leakage: 1 exact duplicate pair(s)" in err
    leakage = json.loads((run / "report.json").read_text())["leakage"]
    assert leakage["exact_duplicates"]["count"] == 1
    assert leakage["near_duplicates"] == {"count": 0, "max_distance": 4, "examples": []}
    assert leakage["groups_in_several_splits"]["count"] == 0
    assert leakage["images_checked"] == 43


def test_float_bands_are_scaled_before_hashing(tmp_path: Path) -> None:
    # Reflectances in 0-1: cast straight to uint8 every tile would be black and hash alike.
    rng = np.random.default_rng(2)
    tiles = {f"tile{i}": rng.random((32, 32, 4)).astype(np.float32) for i in range(4)}
    report = find_leakage(
        {"train": [Record("tile0", 0.5), Record("tile1", 0.5)], "test": [Record("tile2", 0.5), Record("tile3", 0.5)]},
        reader=tiles.__getitem__,
    )
    assert report.images_checked == 4
    assert (report.exact, report.near) == (0, 0)
    twin = {**tiles, "tile3": tiles["tile0"] * 1.01}  # the same tile, slightly brighter: a near duplicate
    report = find_leakage({"train": [Record("tile0", 0.5)], "test": [Record("tile3", 0.5)]}, reader=twin.__getitem__)
    assert report.near == 1
