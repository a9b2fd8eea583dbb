"""The PlantVillage adapter: Crop___Disease names, targets, per-crop selection, healthy, layouts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tlcore.errors import ConfigError, DataError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter, LabeledDataset
from tlcore_agriculture.plantvillage import crop_keys, normalise_disease, split_class

CLASSES = ["Apple___Apple_scab", "Apple___healthy", "Tomato___Late_blight", "Tomato___healthy"]


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("agriculture/plantvillage")


@pytest.fixture
def tree(tmp_path: Path, images: Callable[..., list[Path]]) -> Path:
    """train/ with 3 images per class, val/ with 1 per class (Apple classes only in val)."""
    root = tmp_path / "plantvillage"
    for k, name in enumerate(CLASSES):
        images(root / "train" / name, 3, seed=k)
        if name.startswith("Apple"):
            images(root / "val" / name, 1, seed=10 + k)
    return root


def _folder_of(ds: LabeledDataset, split: str) -> dict[str, str]:
    """image path -> the class name its record carries."""
    return {r.path: ds.classes[r.target] for r in ds.splits[split]}  # type: ignore[index]


def test_split_class_and_healthy_spellings() -> None:
    name = split_class("Tomato___Late_blight")
    assert (name.crop, name.disease, name.healthy) == ("Tomato", "Late_blight", False)
    assert split_class("Corn_(maize)___Common_rust_").disease == "Common_rust"  # GitHub release's trailing _
    for spelling in ("healthy", "Healthy", "HEALTHY", "healthy_leaf", "Healthy leaves", "_healthy_"):
        assert normalise_disease(spelling) == "healthy", spelling
    assert normalise_disease("unhealthy") == "unhealthy"
    assert split_class("Apple___Healthy").label("crop_disease") == "Apple___healthy"
    with pytest.raises(DataError, match="Crop___Disease"):
        split_class("Weeds")
    with pytest.raises(DataError):
        split_class("Tomato___")


def test_crop_keys_accept_short_names() -> None:
    assert {"corn", "corn (maize)", "corn_(maize)"} <= crop_keys("Corn_(maize)")
    assert "pepper" in crop_keys("Pepper,_bell")
    assert "tomato" in crop_keys("Tomato")


def test_crop_disease_target_is_the_default(adapter: DatasetAdapter, tree: Path) -> None:
    ds = adapter.load(tree, {})
    assert ds.classes == CLASSES
    assert len(ds.splits["train"]) == 12 and len(ds.splits["val"]) == 2
    for split in ds.splits:
        for path, label in _folder_of(ds, split).items():
            assert Path(path).parent.name == label
    parts = ds.provenance["class_parts"]
    assert parts["Tomato___Late_blight"] == {"crop": "Tomato", "disease": "Late_blight", "healthy": False}
    assert parts["Apple___healthy"] == {"crop": "Apple", "disease": "healthy", "healthy": True}
    assert ds.provenance["crops"] == ["Apple", "Tomato"]
    assert ds.provenance["target"] == "crop_disease"
    assert ds.root == tree


def test_disease_target_merges_healthy_across_crops(adapter: DatasetAdapter, tree: Path, images: Callable) -> None:
    images(tree / "train" / "Grape___Healthy", 2, seed=20)  # another spelling of healthy
    ds = adapter.load(tree, {"target": "disease"})
    assert ds.classes == ["Apple_scab", "Late_blight", "healthy"]
    labels = _folder_of(ds, "train")
    for path, label in labels.items():
        folder = Path(path).parent.name
        assert label == ("healthy" if folder.lower().endswith("healthy") else folder.split("___")[1])
    assert sum(label == "healthy" for label in labels.values()) == 3 + 3 + 2
    assert ds.provenance["class_parts"]["healthy"] == {
        "crop": ["Apple", "Grape", "Tomato"],
        "disease": "healthy",
        "healthy": True,
    }


def test_crop_target(adapter: DatasetAdapter, tree: Path) -> None:
    ds = adapter.load(tree, {"target": "crop"})
    assert ds.classes == ["Apple", "Tomato"]
    for path, label in _folder_of(ds, "train").items():
        assert Path(path).parent.name.startswith(label + "___")
    assert ds.provenance["class_parts"]["Apple"]["disease"] == ["Apple_scab", "healthy"]
    with pytest.raises(ConfigError, match="target must be one of"):
        adapter.load(tree, {"target": "species"})


def test_crops_option_trains_per_crop(adapter: DatasetAdapter, tree: Path) -> None:
    ds = adapter.load(tree, {"crops": ["tomato"]})  # case-insensitive
    assert ds.classes == ["Tomato___Late_blight", "Tomato___healthy"]
    assert len(ds.splits["train"]) == 6
    assert all(Path(p).parent.name.startswith("Tomato") for p in _folder_of(ds, "train"))
    assert "val" not in ds.splits  # val had no tomato images: dropped, so the engine carves one out of train
    assert ds.provenance["crops"] == ["Tomato"]
    assert ds.provenance["crop_filter"] == ["tomato"]

    apple = adapter.load(tree, {"crop": "Apple"})  # the older single-crop spelling still works
    assert apple.classes == ["Apple___Apple_scab", "Apple___healthy"]
    assert len(apple.splits["val"]) == 2
    assert adapter.load(tree, {"crops": ["Apple", "Tomato"]}).classes == CLASSES

    with pytest.raises(DataError, match="only one crop class"):
        adapter.load(tree, {"crops": ["Apple"], "target": "crop"})  # one crop -> one class


def test_unknown_crop_lists_the_crops(adapter: DatasetAdapter, tree: Path) -> None:
    with pytest.raises(DataError, match="Grape") as info:
        adapter.load(tree, {"crops": ["Grape"]})
    assert "Apple, Tomato" in str(info.value.hint)
    with pytest.raises(ConfigError, match="crops"):
        adapter.load(tree, {"crops": 3})


def test_flat_layout_and_short_crop_names(adapter: DatasetAdapter, tmp_path: Path, images: Callable) -> None:
    for name in ("Corn_(maize)___Common_rust_", "Corn_(maize)___healthy", "Pepper,_bell___Bacterial_spot"):
        images(tmp_path / name, 2)
    assert adapter.detect is not None and adapter.detect(tmp_path)
    ds = adapter.load(tmp_path, {"crops": ["corn"]})
    assert ds.classes == ["Corn_(maize)___Common_rust", "Corn_(maize)___healthy"]
    assert list(ds.splits) == ["train"]


def test_image_sets_and_wrapper_folders(adapter: DatasetAdapter, tmp_path: Path, images: Callable) -> None:
    """The GitHub release: PlantVillage-Dataset/raw/{color,grayscale,segmented}/<class>/."""
    raw = tmp_path / "PlantVillage-Dataset" / "raw"
    for k, image_set in enumerate(("color", "grayscale", "segmented")):
        for name in CLASSES[:2]:
            images(raw / image_set / name, 2 + k, seed=k)
    assert adapter.detect is not None and adapter.detect(tmp_path)
    color = adapter.load(tmp_path, {})
    assert all("/color/" in p for p in _folder_of(color, "train"))
    assert len(color.splits["train"]) == 4
    segmented = adapter.load(tmp_path, {"image_set": "segmented"})
    assert all("/segmented/" in p for p in _folder_of(segmented, "train"))
    assert len(segmented.splits["train"]) == 8
    with pytest.raises(ConfigError, match="image_set"):
        adapter.load(tmp_path, {"image_set": "infrared"})


def test_kaggle_split_layout_with_valid(adapter: DatasetAdapter, tmp_path: Path, images: Callable) -> None:
    """New Plant Diseases (Kaggle): <wrapper>/train/<class>, <wrapper>/valid/<class>."""
    root = tmp_path / "New Plant Diseases Dataset(Augmented)"
    for name in CLASSES:
        images(root / "train" / name, 2)
        images(root / "valid" / name, 1, seed=5)
    ds = adapter.load(tmp_path, {"crops": ["Tomato"]})
    assert set(ds.splits) == {"train", "val"}
    assert len(ds.splits["val"]) == 2


def test_background_class_is_left_out_and_others_fail(adapter: DatasetAdapter, tree: Path, images: Callable) -> None:
    images(tree / "train" / "Background_without_leaves", 2)  # Mendeley/TFDS release
    assert adapter.detect is not None and adapter.detect(tree)
    assert adapter.load(tree, {}).classes == CLASSES
    images(tree / "train" / "Weeds", 1)
    assert not adapter.detect(tree)
    with pytest.raises(DataError, match="Crop___Disease"):
        adapter.load(tree, {})
    assert adapter.load(tree, {"exclude": ["weeds", "Background_without_leaves"]}).classes == CLASSES


def test_a_val_class_missing_from_train_is_an_error(adapter: DatasetAdapter, tree: Path, images: Callable) -> None:
    images(tree / "val" / "Grape___Black_rot", 1)
    with pytest.raises(DataError, match="Grape___Black_rot"):
        adapter.load(tree, {})


def test_detect(host: PluginHost, adapter: DatasetAdapter, tree: Path, tmp_path: Path, images: Callable) -> None:
    assert adapter.detect is not None
    assert adapter.detect(tree)
    # auto-detection tries higher priority first, so it wins over the generic image-folder adapter
    image_folder = host.adapters.get("image-folder")
    assert image_folder.detect is not None and image_folder.detect(tree)
    assert adapter.priority > image_folder.priority

    assert not adapter.detect(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not adapter.detect(empty)
    assert not adapter.detect(tree / "train" / "Apple___healthy" / "leaf0.png")  # a file, not a folder
    plain = tmp_path / "plain"
    images(plain / "train" / "angular_leaf_spot", 1)
    images(plain / "train" / "healthy", 1)
    assert not adapter.detect(plain)  # beans-style folders belong to image-folder


def test_hidden_folders_are_ignored(adapter: DatasetAdapter, tree: Path) -> None:
    (tree / "train" / ".ipynb_checkpoints").mkdir()
    (tree / "train" / "__MACOSX").mkdir()
    assert adapter.detect is not None and adapter.detect(tree)
    assert adapter.load(tree, {}).classes == CLASSES


def test_a_run_directory_inside_the_data_is_not_a_class(adapter: DatasetAdapter, tree: Path) -> None:
    run = tree / "train" / "Apple___run1"  # a name the adapter would otherwise read as a crop and disease
    run.mkdir()
    (run / "config.yaml").write_text("run_id: x\n")
    (run / "report.json").write_text("{}")
    (run / "learning_curves.png").write_bytes((tree / "train" / CLASSES[0] / "leaf0.png").read_bytes())
    assert adapter.load(tree, {}).classes == CLASSES


def test_auto_detected_by_prepare_data(host: PluginHost, tmp_path: Path, images: Callable) -> None:
    from tlcore.config import RunConfig
    from tlcore.data.prepare import prepare_data

    for k, name in enumerate(CLASSES):
        images(tmp_path / name, 10, seed=k)  # flat layout: val and test are carved out of train
    prepared = prepare_data(host, str(tmp_path), RunConfig(adapter_options={"crops": ["Tomato"]}))
    assert prepared.adapter == "agriculture/plantvillage"
    assert prepared.dataset.classes == ["Tomato___Late_blight", "Tomato___healthy"]
    assert sum(len(split) for split in prepared.dataset.splits.values()) == 20
    assert prepared.summary()["provenance"]["crops"] == ["Tomato"]
