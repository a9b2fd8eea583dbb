"""tlcore.testing: the contract checks pass good plugins and name every problem of bad ones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import tlcore
import tlcore_agriculture
import tlcore_medical
from tlcore.catalog import CatalogEntry
from tlcore.data import csv_manifest
from tlcore.data.transforms import eval_transform
from tlcore.specs import (
    Augmentation,
    AugmentationContext,
    Backbone,
    DatasetAdapter,
    Head,
    HeadContext,
    LabeledDataset,
    Preset,
)
from tlcore.testing import (
    SAMPLE_CLASSES,
    check_augmentation,
    check_head,
    check_plugin,
    plugin_name_of,
    write_sample_folder,
)


def plugin(**hooks: Callable[..., Any]) -> SimpleNamespace:
    """A plugin that declares this tlcore's hook contract, with ``hooks`` as its implementations."""
    implementations = {name: tlcore.hookimpl(fn) for name, fn in hooks.items()}
    return SimpleNamespace(TLCORE_HOOKS=tlcore.HOOKS_VERSION, **implementations)


def torch_linear(ctx: HeadContext) -> Any:
    from torch import nn

    return nn.Linear(ctx.in_features, ctx.num_outputs)


def good_plugin() -> SimpleNamespace:
    """A plugin with one object of every kind, all correct."""

    def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
        from tlcore.data import image_folder

        register(DatasetAdapter(name="good/folder", description="core folders", load=image_folder.load))

    def register_augmentations(register: Callable[[Augmentation], None]) -> None:
        register(Augmentation(name="good/plain", description="eval transform", build=eval_transform))

    def register_backbones(register: Callable[[Backbone], None]) -> None:
        register(Backbone(name="good/r18", description="resnet18", timm_name="resnet18", default_weights="none"))

    def resolve_backbone(name: str) -> Backbone | None:
        if name == "good/any-resnet34":
            return Backbone(name=name, description="resnet34", timm_name="resnet34", default_weights="none")
        return None

    def register_heads(register: Callable[[Head], None]) -> None:
        register(Head(name="good/linear", description="linear", kind="torch", build=torch_linear))

    def register_presets(register: Callable[[Preset], None]) -> None:
        settings = {"augmentation": "good/plain", "head": "good/linear", "backbone": "good/r18"}
        register(Preset(name="good/recipe", description="recipe", settings=settings, extends="fine-tuning"))

    def register_catalog_entries(register: Callable[[CatalogEntry], None]) -> None:
        register(
            CatalogEntry(
                name="good/data",
                title="t",
                adapter="good/folder",
                splits=["train"],
                classes=["a"],
                modality="m",
                licence="l",
                citation="c",
                intended_use="u",
            )
        )

    return plugin(**{k: v for k, v in locals().items() if k.startswith(("register_", "resolve_"))})


def test_a_good_plugin_passes(tmp_path: Path) -> None:
    check_plugin(good_plugin(), name="good", resolvable=["good/any-resnet34"], workdir=tmp_path)
    assert (tmp_path / "sample-image-folder" / "train" / SAMPLE_CLASSES[0]).is_dir()


def test_the_shipped_plugins_are_named_after_their_entry_points() -> None:
    assert plugin_name_of(tlcore_medical) == "medical"
    assert plugin_name_of(tlcore_agriculture) == "agriculture"
    with pytest.raises(ValueError, match="pass name="):
        plugin_name_of(good_plugin())


def test_every_problem_of_a_bad_plugin_is_listed() -> None:
    def shrink(ctx: AugmentationContext) -> Any:
        import albumentations as A

        return A.Compose([A.Resize(32, 32)])  # ignores ctx.image_size

    def register_augmentations(register: Callable[[Augmentation], None]) -> None:
        register(Augmentation(name="bad/shrink", description="wrong size", build=shrink))
        register(Augmentation(name="unprefixed", description="no namespace", build=eval_transform))

    def register_heads(register: Callable[[Head], None]) -> None:
        register(
            Head(
                name="bad/wide",
                description="wrong outputs",
                kind="torch",
                build=lambda ctx: torch_linear(HeadContext(ctx.in_features, ctx.num_outputs + 1)),
            )
        )

    def register_presets(register: Callable[[Preset], None]) -> None:
        register(Preset(name="bad/typo", description="misspelled key", settings={"epoch": 3}, extends="fine-tuning"))
        register(Preset(name="bad/ghost", description="unknown head", settings={"head": "bad/none"}))

    def resolve_backbone(name: str) -> Backbone | None:
        return Backbone(name=name, description="greedy", timm_name="resnet18")  # claims every name

    def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
        def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
            return LabeledDataset(classes=["a"], splits={"train": []})

        register(DatasetAdapter(name="bad/empty", description="no records", load=load))

    bad = plugin(**{k: v for k, v in locals().items() if k.startswith(("register_", "resolve_"))})
    with pytest.raises(AssertionError) as error:
        check_plugin(bad, name="bad")
    message = str(error.value)
    assert message.startswith("plugin 'bad' breaks the tlcore plugin contract (7 problems):")
    for expected in (
        "augmentation 'bad/shrink' (train=True): a (80, 100, 3) uint8 image became uint8 (32, 32, 3), "
        "expected uint8 (64, 64, 3)",
        "head 'bad/wide': a (2, 16) input gave shape (2, 4), expected (2, 3) logits",
        "preset 'bad/typo' does not resolve: preset bad/typo: epoch: Extra inputs are not permitted",
        "preset 'bad/ghost': unknown head 'bad/none'",
        "resolve_backbone('tlcore-testing-no-such-backbone') returned Backbone(",
        "dataset adapter 'bad/empty'",
        "no records in a 'train' split",
        "names must look like 'bad/<name>': augmentations 'unprefixed'",
    ):
        assert expected in message, f"{expected!r} not in\n{message}"


def test_a_plugin_that_does_not_load_or_implements_nothing_fails_first() -> None:
    def register_preset(register: Callable[[Preset], None]) -> None:  # misspelled
        pass

    with pytest.raises(AssertionError, match=r"plugin 'typo' did not load: .*register_preset"):
        check_plugin(plugin(register_preset=register_preset), name="typo")
    with pytest.raises(AssertionError, match="implements no tlcore hook"):
        check_plugin(SimpleNamespace(register_presets=lambda register: None), name="undecorated")

    def register_presets(register: Callable[[Preset], None]) -> None:
        raise RuntimeError("boom")

    with pytest.raises(AssertionError, match=r"plugin 'raises' failed: register_presets raised RuntimeError: boom"):
        check_plugin(plugin(register_presets=register_presets), name="raises")


def test_an_adapter_for_another_layout_gets_its_own_sample(tmp_path: Path) -> None:
    """A CSV adapter's detect() rejects the image folder; adapter_samples hands it a manifest instead."""

    def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
        register(
            DatasetAdapter(
                name="csvish/manifest",
                description="labels.csv manifests",
                load=csv_manifest.load,
                detect=lambda root: (root / "labels.csv").is_file(),
            )
        )

    csvish = plugin(register_dataset_adapters=register_dataset_adapters)
    check_plugin(csvish, name="csvish")  # skipped: detect() says no to the generated folder

    folder = write_sample_folder(tmp_path / "csv", counts={"train": 2})
    rows = [f"{p.relative_to(folder)},{p.parent.name}" for p in sorted(folder.rglob("*.png"))]
    (folder / "labels.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    check_plugin(csvish, name="csvish", adapter_samples={"csvish/manifest": folder})

    (folder / "labels.csv").write_text("path,label\n" + "\n".join(r + "x" for r in rows[:1]) + "\n")
    (folder / "train" / "alpha" / "alpha_0.png").write_bytes(b"not a png")
    with pytest.raises(AssertionError, match=r"reader\(.*alpha_0.png'\) raised DataError: cannot decode image"):
        check_plugin(csvish, name="csvish", adapter_samples={"csvish/manifest": folder})
    with pytest.raises(AssertionError, match="does not register: \\['csvish/other'\\]"):
        check_plugin(csvish, name="csvish", adapter_samples={"csvish/other": folder})


def test_single_checks_are_plain_functions() -> None:
    check_augmentation(Augmentation(name="x/eval", description="d", build=eval_transform), image_size=(32, 48))
    with pytest.raises(AssertionError, match="kind must be 'torch' or 'sklearn'"):
        check_head(Head(name="x/h", description="d", kind="keras", build=torch_linear))  # type: ignore[arg-type]

    def sklearn_head(ctx: HeadContext) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression()

    check_head(Head(name="x/lr", description="d", kind="sklearn", build=sklearn_head))


def test_sample_folder_layout(tmp_path: Path) -> None:
    from PIL import Image

    root = write_sample_folder(tmp_path / "s", classes=("a", "b"), counts={"train": 3, "test": 1}, size=(20, 30))
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.png")) == [
        "test/a/a_0.png",
        "test/b/b_0.png",
        *[f"train/{c}/{c}_{i}.png" for c in "ab" for i in range(3)],
    ]
    with Image.open(root / "train" / "a" / "a_0.png") as image:
        assert np.asarray(image).shape == (20, 30, 3)


def test_pytest_fixture(tmp_path: Path) -> None:
    """The pytest11 entry point `tlcore = tlcore.testing` (pyproject.toml) provides `tlcore_plugin_check`.

    Until tlcore is reinstalled after adding the entry point, a stand-in distribution on PYTHONPATH
    declares the same entry point, so pytest loads the module exactly as it would from the install.
    """
    env = dict(os.environ)
    if not entry_points(group="pytest11", name="tlcore"):
        stand_in = tmp_path / "site" / "tlcore_pytest_entry_point-0.dist-info"
        stand_in.mkdir(parents=True)
        (stand_in / "METADATA").write_text("Metadata-Version: 2.1\nName: tlcore-pytest-entry-point\nVersion: 0\n")
        (stand_in / "entry_points.txt").write_text("[pytest11]\ntlcore = tlcore.testing\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stand_in.parent), env.get("PYTHONPATH")]))
    test_file = tmp_path / "test_contract.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import tlcore_medical

            def test_medical(tlcore_plugin_check, tmp_path):
                tlcore_plugin_check(tlcore_medical, name="medical")
                assert (tmp_path / "sample-image-folder" / "train").is_dir()
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(test_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
