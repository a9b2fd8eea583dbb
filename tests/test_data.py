"""Data loading: ImageFolder and CSV layouts, honest splits, image decoding and screening."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tlcore.data import csv_manifest, image_folder
from tlcore.data.prepare import screen_images
from tlcore.data.splits import ensure_splits
from tlcore.errors import DataError
from tlcore.images import check_image, read_image
from tlcore.plugins import PluginHost
from tlcore.specs import LabeledDataset, Record

CLASSES = ["blue", "green", "red"]  # the colour classes of conftest.write_image_folder


def detects(adapter: str, root: Path) -> bool:
    """Whether the core's registered ``adapter`` recognises ``root`` (auto-detection)."""
    detect = PluginHost(load_entrypoints=False).adapters.get(adapter).detect
    assert detect is not None
    return detect(root)


def counts_per_class(records: list[Record]) -> dict[int, int]:
    return dict(sorted(Counter(int(r.target) for r in records).items()))  # type: ignore[arg-type]


# -- ImageFolder layouts -----------------------------------------------------------------------


def test_split_class_layout_loads_every_split(tiny_folder: Path) -> None:
    assert detects("image-folder", tiny_folder)
    ds = image_folder.load(tiny_folder, {})
    assert ds.classes == CLASSES
    assert set(ds.splits) == {"train", "val", "test"}
    assert counts_per_class(ds.splits["train"]) == {0: 8, 1: 8, 2: 8}
    assert counts_per_class(ds.splits["val"]) == {0: 3, 1: 3, 2: 3}
    assert counts_per_class(ds.splits["test"]) == {0: 3, 1: 3, 2: 3}
    for split, records in ds.splits.items():
        for r in records:
            assert Path(r.path).parent.parent.name == split
            assert Path(r.path).parent.name == ds.classes[int(r.target)]  # type: ignore[arg-type]


def test_flat_class_folders_load_as_train_only(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "flat", {"": 10})
    assert detects("image-folder", root)
    ds = image_folder.load(root, {})
    assert ds.classes == CLASSES
    assert list(ds.splits) == ["train"]
    assert len(ds.splits["train"]) == 30


def test_ensure_splits_carves_stratified_val_and_test_deterministically(
    tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    root = make_folder(tmp_path / "flat", {"": 10})

    def carve(seed: int) -> tuple[LabeledDataset, dict[str, str]]:
        ds = image_folder.load(root, {})
        return ds, ensure_splits(ds, 0.2, seed)

    ds, origin = carve(0)
    assert origin["train"] == "given"
    assert "carved from train" in origin["val"]
    assert "carved from train" in origin["test"]
    sizes = {s: len(r) for s, r in ds.splits.items()}
    assert sum(sizes.values()) == 30
    assert sizes["test"] == 6
    # stratified: every class in every split, test exactly 2 per class
    assert counts_per_class(ds.splits["test"]) == {0: 2, 1: 2, 2: 2}
    assert set(counts_per_class(ds.splits["val"])) == {0, 1, 2}
    paths = {s: {r.path for r in recs} for s, recs in ds.splits.items()}
    assert not paths["train"] & paths["val"]
    assert not paths["train"] & paths["test"]
    assert not paths["val"] & paths["test"]

    again, _ = carve(0)
    assert {s: [r.path for r in recs] for s, recs in again.splits.items()} == {
        s: [r.path for r in recs] for s, recs in ds.splits.items()
    }
    other, _ = carve(1)
    assert {r.path for r in other.splits["test"]} != paths["test"]


def test_ensure_splits_keeps_given_splits(tiny_folder: Path) -> None:
    ds = image_folder.load(tiny_folder, {})
    before = {s: list(r) for s, r in ds.splits.items()}
    assert ensure_splits(ds, 0.15, 0) == {"train": "given", "val": "given", "test": "given"}
    assert ds.splits == before


def test_ensure_splits_refuses_a_single_class(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "one", {"train": 6}, classes={"red": (210, 35, 35)})
    ds = image_folder.load(root, {})
    with pytest.raises(DataError, match="single class"):
        ensure_splits(ds, 0.2, 0)


def test_ensure_splits_refuses_too_few_images_to_carve() -> None:
    ds = LabeledDataset(["a", "b"], {"train": [Record("x", 0), Record("y", 1), Record("z", 1)]})
    with pytest.raises(DataError, match="too few"):
        ensure_splits(ds, 0.2, 0)


def test_validation_folder_is_an_alias_for_val(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "aliased", {"training": 2, "validation": 1, "testing": 1})
    ds = image_folder.load(root, {})
    assert set(ds.splits) == {"train", "val", "test"}
    assert len(ds.splits["val"]) == 3
    assert all("/validation/" in r.path for r in ds.splits["val"])


def test_custom_split_aliases_come_from_options(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "custom", {"train": 2, "holdout": 1})
    ds = image_folder.load(root, {"split_aliases": {"holdout": "test"}})
    assert set(ds.splits) == {"train", "test"}
    assert len(ds.splits["test"]) == 3


def test_two_folders_for_one_split_are_refused(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "dup", {"train": 1, "val": 1, "validation": 1})
    with pytest.raises(DataError, match="look like the val split"):
        image_folder.load(root, {})


def test_hidden_files_and_non_images_are_ignored(tiny_folder: Path) -> None:
    (tiny_folder / "train" / "red" / "notes.txt").write_text("not an image")
    (tiny_folder / "train" / "red" / ".hidden.png").write_bytes(b"")
    (tiny_folder / "train" / ".ipynb_checkpoints").mkdir()
    ds = image_folder.load(tiny_folder, {})
    assert ds.classes == CLASSES
    assert len(ds.splits["train"]) == 24


def test_missing_data_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        image_folder.load(tmp_path / "nope", {})
    assert "does not exist" in info.value.message
    assert info.value.hint == image_folder.LAYOUT_HINT


def test_folder_without_class_folders_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "loose"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "a.png")
    with pytest.raises(DataError) as info:
        image_folder.load(root, {})
    assert "no class folders" in info.value.message
    assert "<root>/<split>/<class>/<image>" in str(info.value)


def test_train_split_without_class_folders_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "d" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class folders"):
        image_folder.load(tmp_path / "d", {})


def test_splits_without_train_are_a_data_error(tmp_path: Path, make_folder: Callable[..., Path]) -> None:
    root = make_folder(tmp_path / "notrain", {"val": 1, "test": 1})
    with pytest.raises(DataError, match="no train/ split"):
        image_folder.load(root, {})


def test_class_in_val_but_not_in_train_is_a_data_error(tiny_folder: Path) -> None:
    extra = tiny_folder / "val" / "purple"
    extra.mkdir()
    Image.new("RGB", (8, 8), (128, 0, 128)).save(extra / "p.png")
    with pytest.raises(DataError) as info:
        image_folder.load(tiny_folder, {})
    assert "'purple'" in info.value.message
    assert "val/" in info.value.message
    assert info.value.hint is not None
    assert "blue, green, red" in info.value.hint


def test_empty_train_class_folder_is_a_data_error(tiny_folder: Path) -> None:
    (tiny_folder / "train" / "yellow").mkdir()
    with pytest.raises(DataError) as info:
        image_folder.load(tiny_folder, {})
    assert "yellow" in info.value.message
    assert "no images" in info.value.message
    assert info.value.hint == "add images or remove the folder"


# -- CSV manifests -----------------------------------------------------------------------------


def write_csv(root: Path, rows: list[dict[str, object]], name: str = "labels.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / name, index=False)
    return root / name


def test_csv_with_default_column_names(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"path": f"img/{i}.png", "label": lab, "split": split}
        for i, (lab, split) in enumerate(
            [("cat", "train"), ("dog", "train"), ("cat", "validation"), ("dog", "Test"), ("cat", "test")]
        )
    ]
    write_csv(tmp_path / "m", rows)
    assert detects("csv-manifest", tmp_path / "m")
    ds = csv_manifest.load(tmp_path / "m", {})
    assert ds.classes == ["cat", "dog"]
    assert {s: len(r) for s, r in ds.splits.items()} == {"train": 2, "val": 1, "test": 2}
    first = ds.splits["train"][0]
    assert first.path == str((tmp_path / "m" / "img" / "0.png").resolve())
    assert first.target == 0
    assert first.group is None
    assert ds.provenance["manifest"].endswith("labels.csv")


def test_csv_with_custom_columns_from_options(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"img": f"{i}.jpg", "dx": lab, "hospital": h, "fold_name": "train"}
        for i, (lab, h) in enumerate([("benign", "A"), ("malignant", "B"), ("benign", "C")])
    ]
    manifest = write_csv(tmp_path / "m", rows, name="meta.csv")
    options = {"path_column": "img", "label_column": "dx", "group_column": "hospital", "split_column": "fold_name"}
    ds = csv_manifest.load(manifest, options)
    assert ds.classes == ["benign", "malignant"]
    assert [r.target for r in ds.splits["train"]] == [0, 1, 0]
    assert [r.group for r in ds.splits["train"]] == ["A", "B", "C"]


def test_csv_missing_named_column_lists_the_columns(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m", [{"file": "a.png", "y": "x"}])
    with pytest.raises(DataError) as info:
        csv_manifest.load(manifest, {})
    assert "label" in info.value.message
    assert "file, y" in str(info.value)


def test_csv_path_escaping_the_root_is_refused(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m", [{"path": "a.png", "label": "x"}, {"path": "../secret.png", "label": "y"}])
    with pytest.raises(DataError, match="points outside"):
        csv_manifest.load(manifest, {})


def test_csv_absolute_path_outside_the_root_is_refused(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m", [{"path": "/etc/passwd", "label": "x"}, {"path": "b.png", "label": "y"}])
    with pytest.raises(DataError, match="points outside"):
        csv_manifest.load(manifest, {})


def test_csv_unknown_split_value_is_refused(tmp_path: Path) -> None:
    manifest = write_csv(
        tmp_path / "m",
        [{"path": "a.png", "label": "x", "split": "train"}, {"path": "b.png", "label": "y", "split": "holdout"}],
    )
    with pytest.raises(DataError, match="'holdout'"):
        csv_manifest.load(manifest, {})


def test_csv_label_outside_given_classes_is_refused(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "m", [{"path": "a.png", "label": "x"}, {"path": "b.png", "label": "z"}])
    with pytest.raises(DataError, match="not in classes: z"):
        csv_manifest.load(manifest, {"classes": ["x", "y"]})


def test_folder_with_several_csvs_needs_a_choice(tmp_path: Path) -> None:
    write_csv(tmp_path / "m", [{"path": "a.png", "label": "x"}], name="one.csv")
    write_csv(tmp_path / "m", [{"path": "a.png", "label": "x"}], name="two.csv")
    assert not detects("csv-manifest", tmp_path / "m")
    with pytest.raises(DataError, match="several CSV manifests"):
        csv_manifest.load(tmp_path / "m", {})
    assert len(csv_manifest.load(tmp_path / "m", {"csv": "two.csv"}).splits["train"]) == 1


def test_grouped_manifest_never_puts_a_group_in_two_splits(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [
        {"path": f"p{g:02d}_{k}.png", "label": "sick" if g % 2 else "healthy", "patient_id": f"P{g:02d}"}
        for g in range(20)
        for k in range(3)
    ]
    manifest = write_csv(tmp_path / "m", rows)
    ds = csv_manifest.load(manifest, {})
    assert all(r.group is not None for r in ds.splits["train"])
    origin = ensure_splits(ds, 0.2, 0)
    assert set(origin) == {"train", "val", "test"}
    groups = {s: {r.group for r in recs} for s, recs in ds.splits.items()}
    assert all(groups.values())
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["test"]
    assert not groups["val"] & groups["test"]
    assert sum(len(r) for r in ds.splits.values()) == 60
    # every image of a patient stays together
    assert all(len(recs) % 3 == 0 for recs in ds.splits.values())


# -- read_image --------------------------------------------------------------------------------


def test_read_rgb_png(tmp_path: Path) -> None:
    Image.new("RGB", (10, 6), (1, 2, 3)).save(tmp_path / "a.png")
    out = read_image(str(tmp_path / "a.png"))
    assert out.shape == (6, 10, 3)
    assert out.dtype == np.uint8
    assert tuple(out[0, 0]) == (1, 2, 3)


def test_read_rgba_drops_alpha(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 5), (200, 100, 50, 30)).save(tmp_path / "a.png")
    out = read_image(str(tmp_path / "a.png"))
    assert out.shape == (5, 8, 3)
    assert tuple(out[2, 3]) == (200, 100, 50)


def test_read_palette_image_maps_the_palette(tmp_path: Path) -> None:
    im = Image.new("P", (6, 6), 1)
    im.putpalette([0, 0, 0, 10, 220, 30] + [0] * (256 * 3 - 6))
    im.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = read_image(str(tmp_path / "p.png"))
    assert out.shape == (6, 6, 3)
    assert tuple(out[0, 0]) == (10, 220, 30)


def test_read_cmyk_jpeg_converts_to_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = read_image(str(tmp_path / "c.jpg"))
    assert out.shape == (16, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60  # cyan 0, magenta+yellow full = red


def test_read_16_bit_greyscale_png_scales_to_full_range(tmp_path: Path) -> None:
    ramp = np.linspace(1000, 60000, 32 * 16).reshape(16, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")
    out = read_image(str(tmp_path / "g16.png"))
    assert out.shape == (16, 32, 3)
    assert out.dtype == np.uint8
    assert out.min() == 0
    assert out.max() == 255
    flat = out[..., 0].ravel()
    assert np.all(np.diff(flat.astype(int)) >= 0)  # the ramp stays monotone, not clipped to 255
    assert len(np.unique(flat)) > 100


def test_read_greyscale_gives_three_equal_channels_or_one(tmp_path: Path) -> None:
    Image.new("L", (7, 9), 77).save(tmp_path / "g.png")
    rgb = read_image(str(tmp_path / "g.png"))
    assert rgb.shape == (9, 7, 3)
    assert set(np.unique(rgb)) == {77}
    grey = read_image(str(tmp_path / "g.png"), channels=1)
    assert grey.shape == (9, 7, 1)


def test_read_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (40, 20), (90, 90, 90)).save(tmp_path / "r.jpg", exif=exif)
    assert read_image(str(tmp_path / "r.jpg")).shape == (40, 20, 3)


def make_truncated_jpeg(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_jpeg_is_a_data_error(tmp_path: Path) -> None:
    path = make_truncated_jpeg(tmp_path / "t.jpg")
    with pytest.raises(DataError) as info:
        read_image(str(path))
    assert "cannot decode" in info.value.message
    assert "t.jpg" in info.value.message


def test_text_file_named_jpg_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("this is not a JPEG\n")
    with pytest.raises(DataError, match="cannot decode image"):
        read_image(str(tmp_path / "fake.jpg"))


def test_missing_image_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="image not found"):
        read_image(str(tmp_path / "gone.png"))


# -- screening ---------------------------------------------------------------------------------


def dataset_with_bad_files(tmp_path: Path) -> tuple[LabeledDataset, list[str]]:
    good = []
    for i, colour in enumerate(((255, 0, 0), (0, 0, 255), (0, 255, 0), (9, 9, 9))):
        path = tmp_path / f"good{i}.png"
        Image.new("RGB", (8, 8), colour).save(path)
        good.append(str(path))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "readme.jpg"
    text.write_text("not an image")
    ds = LabeledDataset(
        ["a", "b"],
        {
            "train": [Record(good[0], 0), Record(str(empty), 1), Record(good[1], 1)],
            "test": [Record(str(text), 0), Record(good[2], 0), Record(good[3], 1)],
        },
    )
    return ds, [str(empty), str(text)]


def test_screen_skip_lists_and_drops_unreadable_files(tmp_path: Path) -> None:
    ds, bad = dataset_with_bad_files(tmp_path)
    skipped = screen_images(ds, "skip")
    assert [s["path"] for s in skipped] == bad
    assert [s["split"] for s in skipped] == ["train", "test"]
    assert skipped[0]["reason"] == "empty file"
    assert skipped[1]["reason"]  # the decoder's complaint
    remaining = [r.path for recs in ds.splits.values() for r in recs]
    assert len(remaining) == 4
    assert not set(bad) & set(remaining)


def test_screen_fail_raises_on_the_first_unreadable_file(tmp_path: Path) -> None:
    ds, bad = dataset_with_bad_files(tmp_path)
    with pytest.raises(DataError) as info:
        screen_images(ds, "fail")
    assert bad[0] in info.value.message
    assert info.value.hint is not None
    assert "bad_images=skip" in info.value.hint


def test_screen_ignores_datasets_with_their_own_reader(tmp_path: Path) -> None:
    ds = LabeledDataset(["a"], {"train": [Record(str(tmp_path / "x.dcm"), 0)]}, reader=lambda p: np.zeros((1, 1, 1)))
    assert screen_images(ds, "fail") == []


def test_check_image_accepts_a_good_image(tiny_folder: Path) -> None:
    assert check_image(str(next((tiny_folder / "train" / "red").iterdir()))) is None


def test_screen_skip_drops_a_truncated_jpeg(tmp_path: Path) -> None:
    # PIL's verify() accepts a JPEG cut off mid-scan; the screen must still catch it, or a
    # bad_images=skip run dies later when the image is decoded for training.
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(good)
    truncated = make_truncated_jpeg(tmp_path / "cut.jpg")
    assert check_image(str(truncated)) is not None
    ds = LabeledDataset(["a", "b"], {"train": [Record(str(good), 0), Record(str(truncated), 1)]})
    skipped = screen_images(ds, "skip")
    assert [s["path"] for s in skipped] == [str(truncated)]
    assert [r.path for r in ds.splits["train"]] == [str(good)]
