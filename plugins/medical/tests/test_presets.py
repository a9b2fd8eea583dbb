"""Each medical preset resolves to a valid configuration and trains one epoch on tiny generated data
of its modality (a tiny random-init timm model), writing the operating point and intervals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tlcore.config import build_config, preset_settings
from tlcore.plugins import PluginHost
from tlcore.testing import check_preset
from tlcore.training.run import run_training

TINY = {"backbone": "test_efficientnet", "weights": "none", "epochs": 1, "image_size": 32, "batch_size": 8,
        "head_epochs": 5, "progress": False, "num_workers": 0, "bootstrap": 100}


def blobs(rng: np.random.Generator, bright: bool, size: int = 40, rgb: bool = False) -> np.ndarray:
    """Grey noise; class 1 has a bright disc, so even one epoch can learn something."""
    image = rng.normal(90, 25, (size, size))
    if bright:
        yy, xx = np.mgrid[:size, :size]
        image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2] += 120
    image = np.clip(image, 0, 255).astype(np.uint8)
    return np.stack([image, image * 0.8, image * 0.6], axis=2).astype(np.uint8) if rgb else image


def skin_manifest(root: Path) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(24):
        label = "melanoma" if i % 3 == 0 else "nevus"
        name = f"ISIC_{i:07d}"
        Image.fromarray(blobs(rng, label == "melanoma", rgb=True)).save(root / f"{name}.jpg", quality=95)
        split = "train" if i < 12 else "val" if i < 18 else "test"
        rows.append({"image_id": name, "dx": label, "lesion_id": f"HAM_{i // 2:04d}", "split": split})
    pd.DataFrame(rows).to_csv(root / "HAM10000_metadata.csv", index=False)
    return root


def busi_folder(root: Path) -> Path:
    rng = np.random.default_rng(2)
    for label in ("benign", "malignant", "normal"):
        folder = root / label
        folder.mkdir(parents=True)
        # 30 images: carved to 21 train images, so no training batch of 1 (BatchNorm cannot train on one)
        for i in range(10):
            Image.fromarray(blobs(rng, label != "normal")).save(folder / f"{label} ({i}).png")
            Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / f"{label} ({i})_mask.png")
    return root


def mri_volumes(root: Path, nifti: Any, brain: Any) -> Path:
    for i, split in enumerate(("train", "train", "train", "val", "test")):
        for label in ("glioma", "no_tumour"):
            volume, _ = brain((20, 24, 12), lesion=(4, 9) if label == "glioma" else None, seed=i)
            nifti(root / split / label / f"sub-{label}-{i}.nii.gz", volume)
    return root


def cxr_dicoms(root: Path, dicom: Any) -> Path:
    rng = np.random.default_rng(3)
    for label in ("NORMAL", "PNEUMONIA"):
        for p in range(6):
            for i in range(2):
                stored = blobs(rng, label == "PNEUMONIA").astype(np.uint16) * 16  # 12-bit
                dicom(root / label / f"{p}_{i}.dcm", stored, photometric="MONOCHROME1", patient=f"{label}{p}",
                      bits_stored=12, window=(2048, 4096))
    return root


def data_for(name: str, root: Path, nifti: Any, brain: Any, dicom: Any) -> tuple[Path, str]:
    root.mkdir(parents=True)
    makers: dict[str, Callable[[], tuple[Path, str]]] = {
        "medical/skin-lesion": lambda: (skin_manifest(root), "medical/manifest"),
        "medical/breast-ultrasound": lambda: (busi_folder(root), "medical/masked-folder"),
        "medical/brain-tumor-mri": lambda: (mri_volumes(root, nifti, brain), "medical/nifti"),
        "medical/chest-xray": lambda: (cxr_dicoms(root, dicom), "medical/dicom"),
    }
    return makers[name]()


PRESETS = ["medical/brain-tumor-mri", "medical/skin-lesion", "medical/breast-ultrasound", "medical/chest-xray"]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_resolves_and_trains_one_epoch(host: PluginHost, name: str, tmp_path: Path, nifti: Any, brain: Any,
                                              dicom: Any) -> None:
    config = check_preset(host, name)
    assert (config.technique, config.strategy, config.backbone) == ("fine-tuning", "lp-ft", "tf_efficientnet_lite0")
    assert config.class_weights == "balanced" or config.balanced_sampling
    assert config.monitor in ("balanced_accuracy", "auc")
    data, adapter = data_for(name, tmp_path / "data", nifti, brain, dicom)
    tiny = build_config(preset_settings(host.presets, name), TINY, f"preset {name}")
    assert tiny.augmentation == config.augmentation
    report = run_training(host, tiny, str(data), tmp_path / "run", name)
    assert report["data"]["adapter"] == adapter
    assert report["config"]["augmentation"] == config.augmentation
    test = report["test"]
    assert test["n"] == sum(sum(row) for row in test["confusion_matrix"]) > 0
    assert report["leakage"]["groups_in_several_splits"]["count"] == 0
    ci = report["intervals"]["metrics"]["balanced_accuracy"]
    assert ci["low"] <= test["balanced_accuracy"] <= ci["high"]
    assert report["intervals"]["n_boot"] == 100
    if len(report["data"]["classes"]) == 2:
        point = report["operating_point"]
        assert point["chosen_on"] == "val" and 0.0 <= point["threshold"] <= 1.0
        assert point["test"]["n"] == test["n"]
    else:
        assert "operating_point" not in report
        assert set(report["intervals"]["per_class_auc"]) == set(report["data"]["classes"])
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_presets_carry_their_modality_choices(host: PluginHost) -> None:
    settings = {name: preset_settings(host.presets, name) for name in PRESETS}
    assert settings["medical/brain-tumor-mri"]["augmentation"] == "medical/mri"
    assert settings["medical/skin-lesion"]["augmentation"] == "medical/dermoscopy"
    assert settings["medical/skin-lesion"]["positive_class"] == "melanoma"
    assert settings["medical/breast-ultrasound"]["augmentation"] == "medical/ultrasound"
    assert settings["medical/breast-ultrasound"]["positive_class"] == "malignant"
    # the ultrasound image's whole short side at its stored size, not the middle of it
    ultrasound = settings["medical/breast-ultrasound"]
    assert (ultrasound["image_size"], ultrasound["crop_pct"]) == (256, 1.0)
    assert "image_size" not in settings["medical/skin-lesion"]
    # mirrored test-time views exactly where the training augmentation mirrors too
    for name in PRESETS:
        flips = settings[name].get("augmentation_params", {}).get("hflip", name == "medical/skin-lesion")
        assert settings[name]["tta"] is flips, name


def test_a_multilabel_manifest_trains_with_the_chest_xray_preset(host: PluginHost, tmp_path: Path) -> None:
    """CheXpert-style findings (1/0/-1/blank) through medical/multilabel into the engine's multi-label training."""
    rng = np.random.default_rng(4)
    rows = []
    for i in range(36):
        edema, effusion = i % 2, (i // 2) % 2
        image = blobs(rng, bool(edema))
        image[:, :8] = 200 if effusion else 20  # a second, independent finding
        name = f"patient{i // 2:05d}/study{i % 2 + 1}/view1_frontal.png"  # two studies per patient
        (tmp_path / "cxr" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "cxr" / name)
        rows.append({"Path": name, "Edema": str(float(edema)), "Pleural Effusion": "-1.0" if i % 7 == 0 else
                     str(float(effusion)), "Fracture": "" if i % 3 else "0.0",
                     "split": "train" if i < 24 else "val" if i < 30 else "test"})
    pd.DataFrame(rows).to_csv(tmp_path / "cxr" / "labels.csv", index=False)
    config = build_config(preset_settings(host.presets, "medical/chest-xray"), TINY, "preset medical/chest-xray")
    report = run_training(host, config, str(tmp_path / "cxr"), tmp_path / "run", "medical/chest-xray")
    assert report["data"]["adapter"] == "medical/multilabel" and report["data"]["task"] == "multilabel"
    assert report["data"]["classes"] == ["Edema", "Pleural Effusion", "Fracture"]
    assert set(report["test"]["per_label"]) == {"Edema", "Pleural Effusion", "Fracture"}
    intervals = report["intervals"]
    assert set(intervals["per_label_auc"]) == {"Edema", "Pleural Effusion", "Fracture"}
    edema = intervals["per_label_auc"]["Edema"]
    assert edema["estimate"] == pytest.approx(report["test"]["per_label"]["Edema"]["auc"])
    assert intervals["per_label_auc"]["Fracture"]["estimate"] is None  # only negatives: AUC undefined
    assert "operating_point" not in report
