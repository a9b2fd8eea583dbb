"""Data is never changed behind the user's back: whatever loading leaves out, merges or de-duplicates,
and a split that lacks a class, gives a one-line warning and an entry in report.json (``--strict``: an
error, see tests/test_bad_input.py), and an evaluation says when it scores the run's own training images."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tlcore.config import RunConfig
from tlcore.data import csv_manifest, image_folder
from tlcore.data.prepare import PreparedData, merge_duplicates, prepare_data
from tlcore.data.train_images import TRAIN_IMAGES, train_overlap, write_train_images
from tlcore.errors import DataError
from tlcore.plugins import PluginHost
from tlcore.specs import LabeledDataset, Record, read_rgb

Tl = Callable[..., tuple[int, str, str]]
FE = ["train", "--preset", "feature-extraction"]
FAST = ["--set", "image_size=32", "--set", "batch_size=8", "--set", "progress=false", "--set", "bootstrap=0"]
TWO = {"blue": (40, 50, 210), "red": (210, 35, 35)}


def rows_of(root: Path) -> list[dict[str, str]]:
    """One manifest row per image under ``root/<split>/<class>/``: path, label and split."""
    return [
        {"path": str(p.relative_to(root)), "label": p.parent.name, "split": p.parent.parent.name}
        for p in sorted(root.rglob("*.png"))
    ]


def write_rows(root: Path, rows: list[dict[str, str]]) -> Path:
    path = root / "labels.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def prepare(data: Path, **settings: object) -> PreparedData:
    return prepare_data(PluginHost(load_entrypoints=False), str(data), RunConfig(**settings), check_leakage=True)


# -- CSV manifests: labels as written, blank cells listed ------------------------------------------


def test_csv_labels_lose_surrounding_whitespace_only_and_say_so(
    tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    root = make_folder(tmp_path / "d", {"train": 2})
    rows = rows_of(root)
    rows[0]["label"] = "blue "
    rows[2]["label"] = " green"
    rows[4]["label"] = "Red"  # case is the user's: never folded
    ds = csv_manifest.load(write_rows(root, rows), {})
    assert ds.classes == ["Red", "blue", "green", "red"]
    assert ds.labels_trimmed == [
        {"label": " green", "used_as": "green", "rows": 1},
        {"label": "blue ", "used_as": "blue", "rows": 1},
    ]
    assert [ds.classes[int(r.target)] for r in ds.splits["train"]][:3] == ["blue", "blue", "green"]


def test_csv_rows_without_a_label_or_path_are_listed(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "d", {"train": 2})
    rows = rows_of(root)
    rows[1]["label"] = ""
    rows[3]["label"] = "   "
    rows[5]["path"] = ""
    ds = csv_manifest.load(write_rows(root, rows), {})
    assert len(ds.splits["train"]) == 3
    assert ds.dropped == [
        {"line": 3, "path": "train/blue/blue_01.png", "reason": "no label"},
        {"line": 5, "path": "train/green/green_01.png", "reason": "no label"},
        {"line": 7, "path": None, "reason": "no path"},
    ]


def test_csv_numeric_labels_keep_their_text(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "d", {"train": 2})
    rows = rows_of(root)
    for i, row in enumerate(rows):
        row["label"] = str(i % 2)
    rows[0]["label"] = ""  # a gap made pandas read the column as floats: classes "0.0" and "1.0"
    ds = csv_manifest.load(write_rows(root, rows), {})
    assert ds.classes == ["0", "1"]


# -- image folders: folders that are not read ---------------------------------------------------


def test_folders_that_are_not_classes_are_listed_when_they_hold_images(
    tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    root = make_folder(tmp_path / "d", {"train": 2, "val": 1, "test": 1})
    make_folder(root / "train" / "_violet", {"": 2}, classes={"x": (1, 2, 3)})  # 2 images one level down
    make_folder(root / "val" / "red" / ".thumbs", {"": 1}, classes={"y": (1, 2, 3)})
    (root / "train" / "__MACOSX" / "red").mkdir(parents=True)
    (root / "train" / "__MACOSX" / "red" / "._red_00.png").write_bytes(b"resource fork")  # hidden files: silent
    (root / "test" / "_empty").mkdir()
    ds = image_folder.load(root, {})
    assert ds.classes == ["blue", "green", "red"]
    assert ds.dropped == [
        {
            "split": "train",
            "path": str(root / "train" / "_violet"),
            "images": 2,
            "reason": "folder name starts with '_', so it is not read as a class",
        },
        {
            "split": "val",
            "path": str(root / "val" / "red" / ".thumbs"),
            "images": 1,
            "reason": "hidden folder (name starts with '.')",
        },
    ]


def test_flat_layout_lists_an_underscore_class(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "flat", {"": 4})
    (root / "red").rename(root / "_red")
    prepared = prepare(root, val_fraction=0.25)
    assert prepared.dataset.classes == ["blue", "green"]
    summary = prepared.summary()
    assert [(d["path"], d["images"]) for d in summary["dropped"]] == [(str(root / "_red"), 4)]
    assert "4 image(s) in 1 folder(s) that are not read" in prepared.changes()[0].warning()
    with pytest.raises(DataError, match="_red"):
        prepare(root, val_fraction=0.25, strict=True)


# -- the same file twice ------------------------------------------------------------------------


def test_a_file_listed_twice_is_used_once_and_one_with_two_labels_not_at_all() -> None:
    records = {
        "train": [Record("a", 0), Record("b", 1), Record("a", 0), Record("c", 0), Record("c", 1), Record("d", 1)],
        "test": [Record("e", 0), Record("e", 0), Record("e", 0), Record("f", 1), Record("b", 0), Record("d", 1)],
    }
    ds = LabeledDataset(["x", "y"], records)
    duplicates, conflicts = merge_duplicates(ds)
    assert [r.path for r in ds.splits["train"]] == ["a", "d"]
    assert [r.path for r in ds.splits["test"]] == ["e", "f", "d"]  # d in two splits: the leakage check's
    assert duplicates == [{"split": "train", "path": "a", "copies": 2}, {"split": "test", "path": "e", "copies": 3}]
    assert conflicts == [
        {"path": "b", "labels": ["y", "x"], "splits": ["test", "train"], "rows": 2},
        {"path": "c", "labels": ["x", "y"], "splits": ["train"], "rows": 2},
    ]


def test_multilabel_duplicates_compare_unknown_labels_as_equal() -> None:
    nan = float("nan")
    ds = LabeledDataset(["p", "q"], {"train": [Record("a", (1.0, nan)), Record("a", (1.0, nan))]}, task="multilabel")
    duplicates, conflicts = merge_duplicates(ds)
    assert (len(duplicates), conflicts, len(ds.splits["train"])) == (1, [], 1)


def test_a_split_left_empty_by_conflicting_labels_is_an_error() -> None:
    ds = LabeledDataset(["x", "y"], {"train": [Record("a", 0), Record("b", 1)], "val": [Record("a", 1)]})
    with pytest.raises(DataError, match="every record of the val split"):
        merge_duplicates(ds)


# -- a split without a class ------------------------------------------------------------------------


def test_a_val_split_missing_a_class_is_reported(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "d", {"train": 3, "val": 1, "test": 1}, classes=TWO)
    shutil.rmtree(root / "val" / "red")
    (root / "val" / "red").mkdir()  # an empty class folder outside train is allowed
    prepared = prepare(root)
    assert prepared.missing_classes == {"val": ["red"]}
    assert prepared.summary()["missing_classes"] == {"val": ["red"]}
    (change,) = prepared.changes()
    assert "the val split has no images of class(es) 'red', so no operating point is chosen" in change.warning()
    with pytest.raises(DataError, match="val split has no images of class"):
        prepare(root, strict=True)
    # Evaluating another site that lacks a class is normal: only training looks for missing classes.
    evaluated = prepare_data(PluginHost(load_entrypoints=False), str(root), RunConfig(strict=True))
    assert evaluated.missing_classes == {}


# -- the run's own training images -------------------------------------------------------------


def test_train_overlap_counts_copies_under_another_name(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "d", {"train": 2, "test": 1})
    train = [Record(str(p), 0) for p in sorted((root / "train").rglob("*.png"))]
    run = tmp_path / "run"
    run.mkdir()
    assert train_overlap(run, train, read_rgb) is None  # a run that did not record them
    write_train_images(run, train, read_rgb)
    lines = (run / TRAIN_IMAGES).read_text().splitlines()
    assert len(lines) == len(train) and lines[0].endswith(f"  {train[0].path}") and len(lines[0].split()[0]) == 64
    copy = tmp_path / "copy.png"
    shutil.copy(train[0].path, copy)
    scored = [Record(str(copy), 0), *[Record(str(p), 0) for p in sorted((root / "test").rglob("*.png"))]]
    overlap = train_overlap(run, scored, read_rgb)
    assert overlap is not None
    assert (overlap["count"], overlap["images"], overlap["examples"]) == (1, 4, [str(copy)])


# -- through the command line ---------------------------------------------------------------------


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_training_warns_once_per_change_and_lists_each_in_report_json(
    tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    root = make_folder(tmp_path / "d", {"train": 4, "val": 2, "test": 2}, classes=TWO)
    order = {"train": 0, "val": 1, "test": 2}
    rows = sorted(rows_of(root), key=lambda r: order[r["split"]])
    rows = [r for r in rows if not (r["split"] == "val" and r["label"] == "red")]
    rows[0]["label"] = "blue "  # trimmed
    rows[1]["label"] = ""  # dropped
    test_rows = [r for r in rows if r["split"] == "test"]
    rows += [dict(test_rows[0]), dict(test_rows[1])]  # doubled in test
    rows.append({**rows[2], "label": "red"})  # one train image with two labels
    code, _, err = tl(*FE, "--data", write_rows(root, rows), "--output", tmp_path / "run", *FAST)
    assert code == 0, err
    lines = warnings_of(err)
    for key in ("dropped", "labels_trimmed", "duplicates", "label_conflicts", "missing_classes"):
        assert sum(f"under data.{key};" in line for line in lines) == 1, (key, err)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    data = report["data"]
    assert data["classes"] == ["blue", "red"]
    assert data["dropped"] == [{"line": 3, "path": "train/blue/blue_01.png", "reason": "no label"}]
    assert data["labels_trimmed"] == [{"label": "blue ", "used_as": "blue", "rows": 1}]
    assert [d["copies"] for d in data["duplicates"]] == [2, 2]
    assert [c["labels"] for c in data["label_conflicts"]] == [["blue", "red"]]
    assert data["missing_classes"] == {"val": ["red"]}
    assert report["test"]["n"] == 4  # each test image counted once
    assert data["counts"]["train"] == 8 - 2  # the dropped row and the image with two labels
    assert report["operating_point"]["threshold"] is None
    assert "val has no images of class 'red'" in report["operating_point"]["note"]
    assert len((tmp_path / "run" / TRAIN_IMAGES).read_text().splitlines()) == 6


def test_evaluate_says_when_a_recarved_test_split_holds_training_images(
    tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    root = make_folder(tmp_path / "flat", {"": 6}, classes=TWO)
    run = tmp_path / "run"
    code, _, err = tl(*FE, "--data", root, "--output", run, *FAST)
    assert code == 0, err
    code, _, err = tl("evaluate", run)
    assert code == 0, err
    assert not warnings_of(err)  # the same files, the same carve: test is still unseen
    assert json.loads((run / "evaluation-test.json").read_text())["data"]["train_overlap"]["count"] == 0

    extra = make_folder(tmp_path / "extra", {"": 3}, classes=TWO, seed=7)
    for image in extra.rglob("*.png"):  # new files in the run's own folder: the carve changes
        image.rename(root / image.parent.name / f"new_{image.name}")
    code, _, err = tl("evaluate", run)
    assert code == 0, err
    (line,) = warnings_of(err)
    assert "image(s) are training images of this run" in line and "optimistic" in line
    overlap = json.loads((run / "evaluation-test.json").read_text())["data"]["train_overlap"]
    assert overlap["count"] >= 1 and overlap["examples"]

    code, _, err = tl("evaluate", run, "--strict")
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.strip()]
    assert "training images of this run" in err
