"""Bad input, through the ``tl`` entry point: one line on stderr, exit code 2, nothing lost.

Every error case builds its own broken input in a tmp folder, runs ``tlcore.cli.main`` in-process
and asserts the exit code, that stderr is one ``error:`` line without a traceback, and that the
line names the problem. Inputs accepted by design (CMYK, 16-bit, alpha, palette, ...) are
converted: they are checked to train and load instead, in one shared run at the end.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import tlcore
from tlcore.specs import Augmentation, DatasetAdapter

Tl = Callable[..., tuple[int, str, str]]
TINY = {"train": 3, "val": 1, "test": 1}
FE = ["train", "--preset", "feature-extraction"]
FAST = ["--set", "image_size=32", "--set", "batch_size=8", "--set", "progress=false"]
CATALOG_ENTRY: dict[str, object] = {
    "title": "Toy",
    "splits": ["train", "val", "test"],
    "classes": ["blue", "green", "red"],
    "modality": "rgb",
    "licence": "CC0-1.0",
    "citation": "none",
    "intended_use": "tests",
}


@dataclass
class Env:
    """What a case builder gets: its own folder, monkeypatch, and the dataset writer."""

    tmp: Path
    mp: pytest.MonkeyPatch
    make_folder: Callable[..., Path]
    request: pytest.FixtureRequest | None = None

    def folder(self, counts: dict[str, int] = TINY, **kwargs: Any) -> Path:
        return self.make_folder(self.tmp / "data", counts, **kwargs)

    def trained_run(self) -> Path:
        """This case's own copy of a small trained run (trained once per module, when a case first asks)."""
        assert self.request is not None
        run = self.tmp / "trained"
        shutil.copytree(self.request.getfixturevalue("trained_run"), run)
        return run

    def train(self, data: Path | str, *extra: str) -> list[str]:
        return [*FE, "--data", str(data), "--output", str(self.tmp / "run"), *FAST, *extra]

    def catalog(self, **entries: dict[str, object]) -> Path:
        path = self.tmp / "catalog.yaml"
        path.write_text(yaml.safe_dump({"version": 1, "datasets": entries}))
        self.mp.setenv("TLCORE_CATALOG", str(path))
        return path


# -- files that are not (usable) images ---------------------------------------------------------


def first_png(data: Path, split: str = "train", cls: str = "red") -> Path:
    return sorted((data / split / cls).glob("*.png"))[0]


def truncated_jpeg(path: Path) -> Path:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:-300])  # cut mid-scan: Image.verify() alone accepts it
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` pixels but holds a few bytes: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\0" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def case_truncated_jpeg(env: Env) -> list[str]:
    data = env.folder()
    truncated_jpeg(data / "train" / "red" / "cut.jpg")
    return env.train(data, "--set", "bad_images=fail")


def case_zero_byte_image(env: Env) -> list[str]:
    data = env.folder()
    (data / "val" / "blue" / "empty.png").write_bytes(b"")
    return env.train(data, "--set", "bad_images=fail")


def case_text_file_named_jpg(env: Env) -> list[str]:
    data = env.folder()
    (data / "test" / "green" / "notes.jpg").write_text("not a picture\n")
    return env.train(data, "--set", "bad_images=fail")


def case_huge_image_beyond_the_hard_limit(env: Env) -> list[str]:
    data = env.folder()
    png_header_only(data / "train" / "red" / "bomb.png", 30_000, 30_000)  # 900 MP
    return env.train(data, "--set", "bad_images=fail")


def case_huge_image_between_the_limits(env: Env) -> list[str]:
    # PIL only warns between MAX_IMAGE_PIXELS and twice that, then decodes it all: tlcore refuses.
    data = env.folder()
    png_header_only(data / "train" / "red" / "big.png", 15_000, 15_000)  # 225 MP
    return env.train(data, "--set", "bad_images=fail")


def case_every_val_image_unreadable(env: Env) -> list[str]:
    data = env.folder()
    for path in (data / "val").rglob("*.png"):
        path.write_bytes(b"")
    return env.train(data)  # skip policy: the split would be empty


def case_image_missing_from_manifest(env: Env) -> list[str]:
    data = env.folder()
    rows = [f"{p.relative_to(data)},{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    (data / "labels.csv").write_text("path,label\n" + "\n".join([*rows, "train/red/gone.png,red"]) + "\n")
    return env.train(data / "labels.csv", "--set", "bad_images=fail")


# -- folder layouts -----------------------------------------------------------------------------


def case_empty_class_folder(env: Env) -> list[str]:
    data = env.folder()
    (data / "train" / "violet").mkdir()
    return env.train(data)


def case_train_split_with_one_class(env: Env) -> list[str]:
    data = env.folder(classes={"red": (210, 35, 35)})
    return env.train(data)


def case_no_class_folders(env: Env) -> list[str]:
    (env.tmp / "data" / "train").mkdir(parents=True)
    return env.train(env.tmp / "data")


def case_splits_without_train(env: Env) -> list[str]:
    data = env.folder()
    (data / "train").rename(data / "trn")
    return env.train(data)


def case_class_only_in_test(env: Env) -> list[str]:
    data = env.folder()
    (data / "test" / "red").rename(data / "test" / "crimson")
    return env.train(data)


def case_missing_data_path(env: Env) -> list[str]:
    return env.train(env.tmp / "nowhere")


def case_too_few_images_to_carve_val(env: Env) -> list[str]:
    return env.train(env.folder({"": 1}))  # flat class folders, one image each


# -- CSV manifests ------------------------------------------------------------------------------


def manifest(env: Env, header: str, rows: list[str], name: str = "labels.csv") -> Path:
    data = env.folder()
    path = data / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def image_rows(env: Env) -> list[str]:
    data = env.tmp / "data"
    return [f"{p.relative_to(data)},{p.parent.name}" for p in sorted((data / "train").rglob("*.png"))]


def case_csv_label_not_in_classes(env: Env) -> list[str]:
    path = manifest(env, "path,label", [])
    path.write_text("path,label\n" + "\n".join(image_rows(env)) + "\n")
    return env.train(path, "--set", "adapter_options={classes: [red, green]}")


def case_csv_without_a_path_column(env: Env) -> list[str]:
    path = manifest(env, "picture,label", [])
    path.write_text("picture,label\n" + "\n".join(image_rows(env)) + "\n")
    return env.train(path)


def case_csv_without_a_label_column(env: Env) -> list[str]:
    path = manifest(env, "path,colour", [])
    path.write_text("path,colour\n" + "\n".join(image_rows(env)) + "\n")
    return env.train(path)


def case_csv_named_column_missing(env: Env) -> list[str]:
    path = manifest(env, "path,label", [])
    path.write_text("path,label\n" + "\n".join(image_rows(env)) + "\n")
    return env.train(path, "--set", "adapter_options={path_column: img}")


def case_csv_path_escaping_the_root(env: Env) -> list[str]:
    path = manifest(env, "path,label", [])
    path.write_text("path,label\n" + "\n".join([*image_rows(env), "../../secret.png,red"]) + "\n")
    return env.train(path)


def case_csv_absolute_path_outside_the_root(env: Env) -> list[str]:
    outside = env.tmp / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)
    path = manifest(env, "path,label", [])
    path.write_text("path,label\n" + "\n".join([*image_rows(env), f"{outside},red"]) + "\n")
    return env.train(path)


def case_csv_symlink_escaping_the_root(env: Env) -> list[str]:
    outside = env.tmp / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)
    path = manifest(env, "path,label", [])
    (path.parent / "link.png").symlink_to(outside)
    path.write_text("path,label\n" + "\n".join([*image_rows(env), "link.png,red"]) + "\n")
    return env.train(path)


def case_csv_unknown_split_value(env: Env) -> list[str]:
    path = manifest(env, "path,label,split", [])
    rows = [f"{row},{'holdout' if i == 0 else 'train'}" for i, row in enumerate(image_rows(env))]
    path.write_text("path,label,split\n" + "\n".join(rows) + "\n")
    return env.train(path)


def case_csv_ragged_rows(env: Env) -> list[str]:
    return env.train(manifest(env, "path,label", ["a.png,red", "b.png,red,extra,fields"]))


def case_csv_header_only(env: Env) -> list[str]:
    return env.train(manifest(env, "path,label", []))


# -- datasets.yaml and the catalogue -----------------------------------------------------------


def case_catalog_malformed_yaml(env: Env) -> list[str]:
    path = env.tmp / "catalog.yaml"
    path.write_text("version: 1\ndatasets:\n  toy: {title: [unclosed\n")
    env.mp.setenv("TLCORE_CATALOG", str(path))
    return env.train("toy")


def case_catalog_invalid_schema(env: Env) -> list[str]:
    env.catalog(toy={**CATALOG_ENTRY, "download": [{"url": "https://example.org/t.zip", "sha256": "abc"}]})
    return env.train("toy")


def case_catalog_folder_escaping_the_data_root(env: Env) -> list[str]:
    env.catalog(toy={**CATALOG_ENTRY, "local": "../../elsewhere"})
    return env.train("toy")


def downloadable_entry_named(env: Env, name: str) -> list[str]:
    """A valid, downloadable catalogue entry called ``name``, with the data root two folders deep in tmp."""
    env.mp.setenv("TLCORE_DATA", str(env.tmp / "store" / "data"))  # ../../x would land in tmp, not elsewhere
    archive = env.tmp / "toy.zip"
    shutil.make_archive(str(archive.with_suffix("")), "zip", env.folder())
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    env.catalog(**{name: {**CATALOG_ENTRY, "download": [{"url": archive.as_uri(), "sha256": sha}]}})
    return env.train(name)


def case_catalog_name_climbing_out_of_the_data_root(env: Env) -> list[str]:
    return downloadable_entry_named(env, "../../escaped")


def case_catalog_name_that_is_an_absolute_path(env: Env) -> list[str]:
    return downloadable_entry_named(env, str(env.tmp / "escaped"))


def case_catalog_adapter_option_escaping_the_root(env: Env) -> list[str]:
    env.catalog(toy={**CATALOG_ENTRY, "adapter": "csv", "adapter_options": {"csv": "/etc/labels.csv"}})
    return env.train("toy")


def case_catalog_download_with_wrong_checksum(env: Env) -> list[str]:
    archive = env.tmp / "toy.zip"
    shutil.make_archive(str(archive.with_suffix("")), "zip", env.folder())
    env.catalog(toy={**CATALOG_ENTRY, "download": [{"url": archive.as_uri(), "sha256": "0" * 64}]})
    return env.train("toy")


def case_catalog_download_unreachable(env: Env) -> list[str]:
    env.catalog(toy={**CATALOG_ENTRY, "download": [{"url": "http://127.0.0.1:9/toy.zip", "sha256": "0" * 64}]})
    return env.train("toy")


def case_unknown_dataset(env: Env) -> list[str]:
    return env.train("beanz")


# -- names and settings ------------------------------------------------------------------------


def case_unknown_preset(env: Env) -> list[str]:
    return ["train", "--preset", "fine-tunning", "--data", str(env.folder())]


def case_unknown_backbone(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "backbone=resnet5000")


def case_unknown_head(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "head=linnear")


def case_unknown_augmentation(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "augmentation=standrd")


def case_unknown_adapter(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "adapter=dicom-folder")


def case_set_unknown_key(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "learning_rate=0.1")


def case_set_wrong_type(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "epochs=many")


def case_set_out_of_range(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "val_fraction=1.5")


def case_set_image_size_beyond_the_bound(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "image_size=100000")  # OpenCV would ask for ~39 GB


def case_set_negative_seed(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "seed=-1")


def case_set_absurd_epochs(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "epochs=1e9")  # refused even where the technique ignores it


def case_set_without_equals(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "epochs")


def case_sklearn_head_fine_tuned(env: Env) -> list[str]:
    return ["train", "--preset", "fine-tuning", "--data", str(env.folder()), *FAST, "--set", "head=svm"]


def case_set_zero_grad_accumulation(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "grad_accumulation=0")


def case_set_negative_grad_clip(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "grad_clip=-1")


def case_set_unknown_precision(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", "precision=fp8")


def case_cuda_without_a_gpu(env: Env) -> list[str]:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    return env.train(env.folder(), "--set", "device=cuda")


# -- weights -------------------------------------------------------------------------------------


def case_weights_of_the_wrong_architecture(env: Env) -> list[str]:
    import timm
    from safetensors.torch import save_file

    path = env.tmp / "resnet.safetensors"
    save_file(timm.create_model("test_resnet", pretrained=False).state_dict(), str(path))
    return env.train(env.folder(), "--set", f"weights={path}")


def case_weights_pickle_carrying_code(env: Env) -> list[str]:
    marker = env.tmp / "code-ran"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(str(marker))}, env.tmp / "evil.pth")
    return env.train(env.folder(), "--set", f"weights={env.tmp / 'evil.pth'}")


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def case_weights_corrupt_safetensors(env: Env) -> list[str]:
    path = env.tmp / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    return env.train(env.folder(), "--set", f"weights={path}")


def case_weights_path_missing(env: Env) -> list[str]:
    return env.train(env.folder(), "--set", f"weights={env.tmp / 'nope.pth'}")


def case_hub_unreachable(env: Env) -> list[str]:
    import huggingface_hub.constants as hf_constants

    import tlcore.models.backbones as backbones

    env.mp.setattr(backbones, "_hub_reachable", lambda timeout=3.0: False)  # the probe says: no network
    env.mp.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # so tlcore itself must switch to offline
    env.mp.setattr(hf_constants, "HF_HUB_CACHE", str(env.tmp / "hf"))  # nothing cached
    return env.train(env.folder(), "--set", "backbone=resnet18", "--set", "weights=hub")


# -- the run directory -------------------------------------------------------------------------


def case_disk_full_writing_a_checkpoint(env: Env) -> list[str]:
    import safetensors.torch

    real = safetensors.torch.save_file
    run = env.tmp / "run"

    def full_disk(tensors: Any, filename: str, metadata: Any = None) -> None:
        if Path(filename).parent == run:  # the run's checkpoints; the weights cache still works
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        real(tensors, filename, metadata=metadata)

    env.mp.setattr(safetensors.torch, "save_file", full_disk)
    data = env.folder()
    # 64 px: at 32 px a last batch of one image has one value per channel, which BatchNorm refuses to train on
    size = ["--set", "image_size=64", "--set", "batch_size=8", "--set", "progress=false", "--set", "epochs=1"]
    return ["train", "--preset", "fine-tuning", "--data", str(data), "-o", str(run), *size]


def case_output_is_a_file(env: Env) -> list[str]:
    (env.tmp / "run").write_text("I am a file")
    return env.train(env.folder())


def case_resume_without_a_run(env: Env) -> list[str]:
    (env.tmp / "empty").mkdir()
    return ["train", "--resume", str(env.tmp / "empty")]


def case_train_without_data(env: Env) -> list[str]:
    return ["train", "--preset", "feature-extraction"]


# -- recipes (tl train --config FILE) -----------------------------------------------------------


def recipe(env: Env, text: str | bytes, *extra: str) -> list[str]:
    """``tl train --config`` on a recipe file holding ``text``, with tiny data and a fresh output."""
    path = env.tmp / "recipe.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return ["train", "--config", str(path), "--data", str(env.folder()), "--output", str(env.tmp / "run"), *extra]


def case_recipe_missing(env: Env) -> list[str]:
    return ["train", "--config", str(env.tmp / "nope.yaml"), "--data", str(env.folder())]


def case_recipe_is_a_run_folder(env: Env) -> list[str]:
    return ["train", "--config", str(env.trained_run()), "--data", str(env.folder())]


def case_recipe_not_yaml(env: Env) -> list[str]:
    return recipe(env, "extends: feature-extraction\nepochs: [3\n")


def case_recipe_binary(env: Env) -> list[str]:
    return recipe(env, b"\x89PNG\r\n\x1a\n\x00\xff\xfe")


def case_recipe_not_a_mapping(env: Env) -> list[str]:
    return recipe(env, "- epochs: 3\n- lr: 0.1\n")


def case_recipe_empty(env: Env) -> list[str]:
    return recipe(env, "")


def case_recipe_unknown_key(env: Env) -> list[str]:
    return recipe(env, "extends: feature-extraction\nepohcs: 3\n")


def case_recipe_wrong_type(env: Env) -> list[str]:
    return recipe(env, "extends: feature-extraction\nepochs: many\n")


def case_recipe_out_of_range(env: Env) -> list[str]:
    return recipe(env, "extends: feature-extraction\nval_fraction: 1.5\n")


def case_recipe_nested_wrong_type(env: Env) -> list[str]:
    return recipe(env, "extends: feature-extraction\nhead_params: [C, 2]\n")


def case_recipe_unknown_extends(env: Env) -> list[str]:
    return recipe(env, "extends: fine-tunning\n")


def case_recipe_extends_that_is_not_a_name(env: Env) -> list[str]:
    return recipe(env, "extends: {name: fine-tuning}\n")


def case_recipe_extends_disagreeing_with_preset(env: Env) -> list[str]:
    return recipe(env, "extends: fine-tuning\n", "--preset", "feature-extraction")


def case_recipe_set_still_checked(env: Env) -> list[str]:
    return recipe(env, "extends: feature-extraction\n", "--set", "epochs=0")


def case_recipe_without_data(env: Env) -> list[str]:
    (env.tmp / "recipe.yaml").write_text("extends: feature-extraction\n")
    return ["train", "--config", str(env.tmp / "recipe.yaml")]


def case_recipe_with_resume(env: Env) -> list[str]:
    (env.tmp / "recipe.yaml").write_text("extends: feature-extraction\n")
    return ["train", "--config", str(env.tmp / "recipe.yaml"), "--resume", str(env.trained_run())]


def case_run_config_with_a_setting_beside_config(env: Env) -> list[str]:
    config = env.trained_run() / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**saved, "epochs": 3}))
    return ["train", "--config", str(config), "--data", str(env.folder()), "--output", str(env.tmp / "run")]


def case_list_presets_yaml_of_an_unknown_preset(env: Env) -> list[str]:
    return ["list", "presets", "--yaml", "fine-tunning"]


def case_predict_with_a_folder_that_is_not_a_run(env: Env) -> list[str]:
    image = env.tmp / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    return ["predict", str(env.tmp), str(image)]


@pytest.fixture(scope="module")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path], tl_module: Callable[..., int]
) -> Path:
    base = tmp_path_factory.mktemp("trained")
    run = base / "run"
    assert tl_module(*FE, "--data", make_folder(base / "data", TINY), "--output", run, *FAST) == 0
    return run


def truncated_weights(env: Env) -> Path:
    run = env.trained_run()
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    return run


def edited_model_json(env: Env, edit: Callable[[dict[str, Any]], object]) -> list[str]:
    run = env.trained_run()
    meta = json.loads((run / "model.json").read_text())
    edit(meta)
    (run / "model.json").write_text(json.dumps(meta))
    return ["predict", str(run), str(first_png(env.folder()))]


def case_predict_with_truncated_weights(env: Env) -> list[str]:
    return ["predict", str(truncated_weights(env)), str(first_png(env.folder()))]


def case_evaluate_with_truncated_weights(env: Env) -> list[str]:
    return ["evaluate", str(truncated_weights(env)), "--data", str(env.folder())]


def case_export_with_truncated_weights(env: Env) -> list[str]:
    return ["export", str(truncated_weights(env)), "--format", "torchscript"]


def case_model_json_with_another_class_count(env: Env) -> list[str]:
    return edited_model_json(env, lambda meta: meta.update(classes=["blue", "red"]))


def case_model_json_with_another_architecture(env: Env) -> list[str]:
    return edited_model_json(env, lambda meta: meta.update(backbone="test_resnet", timm_name="test_resnet"))


def case_model_json_with_a_wrong_type(env: Env) -> list[str]:
    return edited_model_json(env, lambda meta: meta.update(in_chans="three"))


def case_model_json_without_classes(env: Env) -> list[str]:
    return edited_model_json(env, lambda meta: meta.pop("classes"))


def case_model_json_that_is_not_json(env: Env) -> list[str]:
    run = env.trained_run()
    (run / "model.json").write_text('{"backbone": "tf_efficientnet_lite0", ')  # cut short by hand
    return ["predict", str(run), str(first_png(env.folder()))]


# -- plugins that raise -----------------------------------------------------------------------


def plugin(**hooks: Callable[..., Any]) -> SimpleNamespace:
    return SimpleNamespace(**{name: tlcore.hookimpl(fn) for name, fn in hooks.items()})


def use_plugin(env: Env, name: str, module: SimpleNamespace) -> None:
    from tlcore.plugins import PluginHost

    host = PluginHost(load_entrypoints=False)
    host.add_plugin(module, name=name)
    env.mp.setattr("tlcore.plugins.get_host", lambda: host)


def boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("boom")


def case_plugin_adapter_raises(env: Env) -> list[str]:
    adapter = DatasetAdapter(name="exploding", description="", load=boom)
    use_plugin(env, "exploding", plugin(register_dataset_adapters=lambda register: register(adapter)))
    return env.train(env.folder(), "--set", "adapter=exploding")


def case_plugin_augmentation_raises(env: Env) -> list[str]:
    aug = Augmentation(name="exploding/aug", description="", build=boom)
    use_plugin(env, "exploding", plugin(register_augmentations=lambda register: register(aug)))
    return env.train(env.folder(), "--set", "augmentation=exploding/aug")


def case_plugin_detect_raises_and_nothing_else_matches(env: Env) -> list[str]:
    adapter = DatasetAdapter(name="exploding", description="", load=boom, detect=boom, priority=100)
    use_plugin(env, "exploding", plugin(register_dataset_adapters=lambda register: register(adapter)))
    loose = env.tmp / "loose"
    loose.mkdir()
    Image.new("RGB", (8, 8)).save(loose / "a.png")
    return env.train(loose)


# -- data that loading would change: --strict refuses (without it: a warning, tests/test_data_changes.py) --


def strict_manifest(env: Env, edit: Callable[[list[str]], list[str]]) -> list[str]:
    """A manifest of every image of the folder, rows edited by ``edit``, trained with ``--strict``."""
    data = env.folder()
    rows = [f"{p.relative_to(data)},{p.parent.name}" for p in sorted(data.rglob("*.png"))]
    (data / "labels.csv").write_text("path,label\n" + "\n".join(edit(rows)) + "\n")
    return env.train(data / "labels.csv", "--strict")


def case_csv_label_with_surrounding_whitespace_under_strict(env: Env) -> list[str]:
    return strict_manifest(env, lambda rows: [rows[0] + " ", *rows[1:]])


def case_csv_row_without_a_label_under_strict(env: Env) -> list[str]:
    return strict_manifest(env, lambda rows: [rows[0], rows[1].partition(",")[0] + ",", *rows[2:]])


def case_csv_duplicated_row_under_strict(env: Env) -> list[str]:
    return strict_manifest(env, lambda rows: [*rows, rows[0]])


def case_csv_image_with_two_labels_under_strict(env: Env) -> list[str]:
    return strict_manifest(env, lambda rows: [*rows, rows[0].replace(",blue", ",red")])


def case_underscore_class_folder_under_strict(env: Env) -> list[str]:
    data = env.folder()
    (data / "train" / "_violet").mkdir()
    shutil.copy(first_png(data), data / "train" / "_violet" / "v.png")
    return env.train(data, "--strict")


def case_val_split_missing_a_class_under_strict(env: Env) -> list[str]:
    data = env.folder()
    for path in (data / "val" / "red").glob("*.png"):
        path.unlink()
    return env.train(data, "--strict")


def case_evaluate_on_its_own_training_images_under_strict(env: Env) -> list[str]:
    from tlcore.cli import main
    from tlcore.plugins import reset_host

    reset_host(None)
    assert main([str(a) for a in env.train(env.folder())]) == 0
    return ["evaluate", str(env.tmp / "run"), "--split", "train", "--strict"]


#: (case, substrings of the error line). Every case exits with 2 and prints one line.
ERROR_CASES: list[tuple[Callable[[Env], list[str]], tuple[str, ...]]] = [
    (case_truncated_jpeg, ("unreadable image", "cut.jpg", "bad_images=skip")),
    (case_zero_byte_image, ("empty.png", "empty file")),
    (case_text_file_named_jpg, ("notes.jpg", "cannot identify image file")),
    (case_huge_image_beyond_the_hard_limit, ("bomb.png", "too large to decode safely")),
    (case_huge_image_between_the_limits, ("big.png", "too large to decode safely")),
    (case_every_val_image_unreadable, ("every image of the val split is unreadable",)),
    (case_image_missing_from_manifest, ("gone.png", "unreadable image")),
    (case_empty_class_folder, ("violet", "has no images")),
    (case_train_split_with_one_class, ("single class",)),
    (case_no_class_folders, ("has no class folders",)),
    (case_splits_without_train, ("no train/ split",)),
    (case_class_only_in_test, ("'crimson'", "not in train/")),
    (case_missing_data_path, ("nowhere", "does not exist")),
    (case_too_few_images_to_carve_val, ("too few to split off",)),
    (case_csv_label_not_in_classes, ("manifest labels not in classes: blue",)),
    (case_csv_without_a_path_column, ("no path column", "picture")),
    (case_csv_without_a_label_column, ("no label column", "colour")),
    (case_csv_named_column_missing, ("no column 'img'",)),
    (case_csv_path_escaping_the_root, ("'../../secret.png' points outside",)),
    (case_csv_absolute_path_outside_the_root, ("outside.png", "points outside")),
    (case_csv_symlink_escaping_the_root, ("'link.png' points outside",)),
    (case_csv_unknown_split_value, ("'holdout'", "train/val/test")),
    (case_csv_ragged_rows, ("cannot parse manifest",)),
    (case_csv_header_only, ("has no rows",)),
    (case_catalog_malformed_yaml, ("catalog.yaml", "invalid YAML")),
    (case_catalog_invalid_schema, ("datasets.toy.download.0.sha256", "64 hex")),
    (case_catalog_folder_escaping_the_data_root, ("datasets.toy.local", "'..' is not allowed")),
    (case_catalog_name_climbing_out_of_the_data_root, ("datasets.'../../escaped'", "not a path")),
    (case_catalog_name_that_is_an_absolute_path, ("escaped'", "a folder name under $TLCORE_DATA")),
    (
        case_catalog_adapter_option_escaping_the_root,
        ("datasets.toy.adapter_options: csv:", "/etc/labels.csv"),
    ),
    (case_catalog_download_with_wrong_checksum, ("checksum mismatch", "toy.zip")),
    (case_catalog_download_unreachable, ("could not download toy", "offline")),
    (case_unknown_dataset, ("unknown dataset 'beanz'", "beans")),
    (case_unknown_preset, ("unknown preset 'fine-tunning'", "'fine-tuning'")),
    (case_unknown_backbone, ("unknown backbone 'resnet5000'",)),
    (case_unknown_head, ("unknown head 'linnear'", "'linear'")),
    (case_unknown_augmentation, ("unknown augmentation 'standrd'", "'standard'")),
    (case_unknown_adapter, ("unknown dataset adapter 'dicom-folder'",)),
    (case_set_unknown_key, ("unknown key 'learning_rate'",)),
    (case_set_wrong_type, ("epochs", "integer", "'many'")),
    (case_set_out_of_range, ("val_fraction", "less than 1")),
    (case_set_image_size_beyond_the_bound, ("image_size", "less than or equal to 2048", "tl train --help")),
    (case_set_negative_seed, ("seed", "greater than or equal to 0", "tl train --help")),
    (case_set_absurd_epochs, ("epochs", "less than or equal to 10000", "(got 1000000000.0)")),
    (case_set_without_equals, ("'epochs' is not key=value",)),
    (case_set_zero_grad_accumulation, ("grad_accumulation", "greater than or equal to 1", "(got 0)")),
    (case_set_negative_grad_clip, ("grad_clip", "greater than 0", "(got -1)")),
    (case_set_unknown_precision, ("precision", "'auto', 'bf16', 'fp16' or 'fp32'", "(got 'fp8')")),
    (case_sklearn_head_fine_tuned, ("'svm' is a scikit-learn head",)),
    (case_cuda_without_a_gpu, ("device=cuda but no CUDA GPU",)),
    (case_weights_of_the_wrong_architecture, ("does not fit architecture tf_efficientnet_lite0",)),
    (case_weights_pickle_carrying_code, ("refusing to load evil.pth", "may carry code")),
    (case_weights_corrupt_safetensors, ("broken.safetensors", "not a readable safetensors file")),
    (case_weights_path_missing, ("nope.pth", "neither default/hub/none")),
    (case_hub_unreachable, ("could not download pretrained weights for resnet18", "weights=none")),
    (case_disk_full_writing_a_checkpoint, ("could not write", "No space left on device", "free some disk space")),
    (case_output_is_a_file, ("could not create folder", "a file of that name is in the way")),
    (case_resume_without_a_run, ("nothing to resume",)),
    (case_train_without_data, ("needs --preset and --data",)),
    (case_recipe_missing, ("recipe", "nope.yaml does not exist", "tl list presets --yaml")),
    (case_recipe_is_a_run_folder, ("is a folder", "config.yaml")),
    (case_recipe_not_yaml, ("recipe.yaml is not valid YAML at line 3",)),
    (case_recipe_binary, ("recipe.yaml is not a text file",)),
    (case_recipe_not_a_mapping, ("holds a list, not a mapping",)),
    (case_recipe_empty, ("recipe.yaml is empty",)),
    (case_recipe_unknown_key, ("recipe.yaml: unknown key 'epohcs'", "did you mean epochs?", "tl train --help")),
    (case_recipe_wrong_type, ("recipe.yaml: epochs:", "integer", "'many'")),
    (case_recipe_out_of_range, ("recipe.yaml: val_fraction:", "less than 1", "tl train --help")),
    (case_recipe_nested_wrong_type, ("recipe.yaml: head_params:", "dictionary")),
    (case_recipe_unknown_extends, ("recipe.yaml: extends: unknown preset 'fine-tunning'", "'fine-tuning'")),
    (case_recipe_extends_that_is_not_a_name, ("recipe.yaml: extends: expected a preset name",)),
    (
        case_recipe_extends_disagreeing_with_preset,
        ("extends: fine-tuning, but the preset given is feature-extraction", "give no preset"),
    ),
    (case_recipe_set_still_checked, ("--set: epochs:", "greater than or equal to 1")),
    (case_recipe_without_data, ("--config needs --data", "names no data")),
    (case_recipe_with_resume, ("--resume continues a run", "--config starts one")),
    (case_run_config_with_a_setting_beside_config, ("setting 'epochs' beside `config:`",)),
    (case_list_presets_yaml_of_an_unknown_preset, ("unknown preset 'fine-tunning'", "'fine-tuning'")),
    (case_predict_with_a_folder_that_is_not_a_run, ("holds no trained model",)),
    (case_predict_with_truncated_weights, ("model.safetensors is damaged or truncated", "train the run again")),
    (case_evaluate_with_truncated_weights, ("model.safetensors is damaged or truncated",)),
    (case_export_with_truncated_weights, ("model.safetensors is damaged or truncated",)),
    (case_model_json_with_another_class_count, ("model.json lists 2 classes", "trained on 3 (blue, green, red)")),
    (
        case_model_json_with_another_architecture,
        ("does not fit the model model.json describes (backbone test_resnet", "restore both"),
    ),
    (case_model_json_with_a_wrong_type, ("model.json: in_chans:", "'three'")),
    (case_model_json_without_classes, ("model.json: classes: required key is missing",)),
    (case_model_json_that_is_not_json, ("model.json is not valid JSON",)),
    (case_plugin_adapter_raises, ("adapter 'exploding' failed", "RuntimeError: boom")),
    (case_plugin_augmentation_raises, ("augmentation 'exploding/aug'", "plugin 'exploding'", "RuntimeError: boom")),
    (case_plugin_detect_raises_and_nothing_else_matches, ("no dataset adapter recognises",)),
    (case_csv_label_with_surrounding_whitespace_under_strict, ("surrounding whitespace", "'blue '", "--strict")),
    (case_csv_row_without_a_label_under_strict, ("without a path or label", "line 3", "no label")),
    (case_csv_duplicated_row_under_strict, ("listed more than once", "data.duplicates")),
    (case_csv_image_with_two_labels_under_strict, ("listed with different labels", "'blue', 'red'")),
    (case_underscore_class_folder_under_strict, ("_violet", "not read as a class")),
    (case_val_split_missing_a_class_under_strict, ("val split has no images of class(es) 'red'",)),
    (case_evaluate_on_its_own_training_images_under_strict, ("training images of this run", "optimistic")),
]


@pytest.mark.parametrize(("case", "needles"), ERROR_CASES, ids=[c.__name__[5:] for c, _ in ERROR_CASES])
def test_bad_input_is_one_line_and_exit_code_2(
    case: Callable[[Env], list[str]],
    needles: tuple[str, ...],
    tl: Tl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_folder: Callable[..., Path],
    request: pytest.FixtureRequest,
) -> None:
    argv = case(Env(tmp_path, monkeypatch, make_folder, request))
    code, _, err = tl(*argv)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert code == 2, err
    # Nothing half-written is left behind: no temporary files anywhere in the case's folder.
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert not (tmp_path / "code-ran").exists()  # the pickle payload never ran


def test_the_report_of_a_run_with_a_damaged_model_json_still_renders(tl: Tl, trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "model.json").write_text('{"backbone": ')
    code, _, err = tl("report", run)
    assert code == 0, err
    assert (run / "report.html").is_file()


def test_a_plugin_raising_inside_a_registration_hook_is_skipped_with_a_warning(
    tl: Tl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_folder: Callable[..., Path]
) -> None:
    env = Env(tmp_path, monkeypatch, make_folder)
    use_plugin(env, "exploding", plugin(register_presets=boom))
    code, out, err = tl("list", "presets", "--json")
    assert code == 0
    assert "warning: plugin 'exploding' failed and was skipped: register_presets raised RuntimeError: boom" in err
    assert "fine-tuning" in {p["name"] for p in json.loads(out)}


# -- accepted by design: converted, trained on, and listed when skipped --------------------------


def odd_images(folder: Path) -> dict[str, Path]:
    """One file of each accepted oddity, and the skip-policy ones, in ``folder``."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    out = {
        "cmyk_jpeg": folder / "cmyk.jpg",
        "png_16_bit": folder / "deep.png",
        "rgba_png": folder / "alpha.png",
        "palette_png": folder / "palette.png",
        "greyscale_with_alpha": folder / "la.png",
        "one_bit_png": folder / "bits.png",
        "float_tiff": folder / "float.tif",
        "png_named_jpg": folder / "really-a-png.jpg",
        "exif_rotated_jpeg": folder / "rotated.jpg",
        "truncated_jpeg_skipped": folder / "cut.jpg",
        "zero_byte_skipped": folder / "empty.png",
        "huge_image_skipped": folder / "bomb.png",
    }
    Image.fromarray(rgb).convert("CMYK").save(out["cmyk_jpeg"])
    Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)).save(out["png_16_bit"])
    Image.fromarray(rgb).convert("RGBA").save(out["rgba_png"])
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(out["palette_png"])
    Image.fromarray(rgb).convert("LA").save(out["greyscale_with_alpha"])
    Image.fromarray(rgb).convert("1").save(out["one_bit_png"])
    Image.fromarray(rng.normal(0, 1, (40, 40)).astype(np.float32)).save(out["float_tiff"])
    Image.fromarray(rgb).save(out["png_named_jpg"], format="PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb[:, :20]).save(out["exif_rotated_jpeg"], exif=exif)
    truncated_jpeg(out["truncated_jpeg_skipped"])
    out["zero_byte_skipped"].write_bytes(b"")
    png_header_only(out["huge_image_skipped"], 15_000, 15_000)
    return out


@pytest.fixture(scope="module")
def accepted_run(
    tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path], tl_module: Callable[..., int]
) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("accepted")
    data = make_folder(base / "data", TINY)
    files = odd_images(data / "train" / "red")
    run = base / "run"
    code = tl_module(*FE, "--data", data, "--output", run, *FAST, "--set", "bad_images=skip")
    report = json.loads((run / "report.json").read_text()) if code == 0 else {}
    return {"code": code, "files": files, "report": report, "run": run, "data": data}


ACCEPTED = [
    "cmyk_jpeg",
    "png_16_bit",
    "rgba_png",
    "palette_png",
    "greyscale_with_alpha",
    "one_bit_png",
    "float_tiff",
    "png_named_jpg",
    "exif_rotated_jpeg",
]
SKIPPED = {
    "truncated_jpeg_skipped": "",
    "zero_byte_skipped": "empty file",
    "huge_image_skipped": "too large to decode safely",
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_images_are_converted_and_trained_on(name: str, accepted_run: dict[str, Any]) -> None:
    from tlcore.images import read_image

    assert accepted_run["code"] == 0
    path = accepted_run["files"][name]
    image = read_image(str(path))
    assert image.dtype == np.uint8 and image.shape == ((20, 40, 3) if name == "exif_rotated_jpeg" else (40, 40, 3))
    skipped = {s["path"] for s in accepted_run["report"]["data"]["skipped_images"]}
    assert str(path) not in skipped
    assert accepted_run["report"]["data"]["counts"]["train"] == 9 + len(ACCEPTED)


@pytest.mark.parametrize("name", sorted(SKIPPED))
def test_corrupt_images_are_skipped_and_listed_with_the_reason(name: str, accepted_run: dict[str, Any]) -> None:
    assert accepted_run["code"] == 0
    path = str(accepted_run["files"][name])
    reasons = {s["path"]: s["reason"] for s in accepted_run["report"]["data"]["skipped_images"]}
    assert path in reasons
    assert SKIPPED[name] in reasons[path]


def test_the_run_with_converted_images_loads_and_predicts(accepted_run: dict[str, Any], tl: Tl) -> None:
    files = accepted_run["files"]
    code, out, err = tl("predict", accepted_run["run"], files["cmyk_jpeg"], files["png_16_bit"], "--top-k", "1")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in rows] == [str(files["cmyk_jpeg"]), str(files["png_16_bit"])]
    assert all(0 <= r["predictions"][0]["probability"] <= 1 for r in rows)
