"""Recipes: ``tl train --config FILE`` and ``tlcore.train(config=...)`` against the same settings given with
``--set``; a run's config.yaml trained again; presets printed as recipes. The bad recipes (one line, exit
code 2) are rows of tests/test_bad_input.py.

Runs are feature extraction with a random-initialised ``test_resnet`` at 32 px and a logistic-regression
head, on tiny generated images: a few seconds each on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import tlcore
from tests.conftest import same_settings_report, write_image_folder
from tlcore.config import parse_overrides, resolve_config
from tlcore.errors import ConfigError
from tlcore.plugins import PluginHost, reset_host
from tlcore.recipes import load_recipe, preset_recipe, recipe_config

Tl = Callable[..., tuple[int, str, str]]
#: One small run, as --set arguments; the recipe below says the same (head aside: --set overrides it).
SET = [
    "backbone=test_resnet",
    "weights=none",
    "image_size=32",
    "batch_size=16",
    "head=logistic-regression",
    "head_params={C: 0.5}",
    "lr=3e-4",
    "bootstrap=0",
    "progress=false",
]
RECIPE = """\
extends: feature-extraction
description: a tiny run for the tests
backbone: test_resnet
weights: none
image_size: 32
batch_size: 16
head: svm                # --set head=logistic-regression overrides it
head_params: {C: 0.5}
lr: 3e-4                 # YAML 1.1 reads this as text: it is a number here, as with --set
bootstrap: 0
progress: false
"""


def set_args(pairs: list[str]) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def report(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "report.json").read_text()))


def saved(run_dir: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((run_dir / "config.yaml").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Four runs on one colour dataset: settings by --set, the same by a recipe (CLI, then API), and the
    recipe run's config.yaml trained again on another dataset."""
    from tlcore.cli import main

    base = tmp_path_factory.mktemp("recipes")
    folder = write_image_folder(base / "colours", {"train": 6, "val": 3, "test": 3})
    other = write_image_folder(base / "other", {"train": 6, "val": 3, "test": 3}, seed=7)
    recipe = base / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = {"base": base, "folder": folder, "other": other, "recipe": recipe}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.setenv("TLCORE_LOAD_PLUGINS", "")
        mp.delenv("TLCORE_DISABLE_PLUGINS", raising=False)

        def tl(*argv: str | Path) -> None:
            reset_host(None)
            assert main([str(a) for a in argv]) == 0

        out["set"] = base / "by-set"
        tl("train", "--preset", "feature-extraction", "--data", folder, "--output", out["set"], *set_args(SET))
        out["cli"] = base / "by-recipe"
        tl("train", "--config", recipe, "--data", folder, "--output", out["cli"], "--set", "head=logistic-regression")
        reset_host(None)
        out["api"] = tlcore.train(
            folder, config=recipe, output=base / "by-api", progress=False, head="logistic-regression"
        ).dir
        out["again"] = base / "again"
        tl("train", "--config", out["cli"] / "config.yaml", "--data", other, "--output", out["again"])
        reset_host(None)
        yield out


def test_a_recipe_run_equals_the_same_settings_given_with_set(runs: dict[str, Path]) -> None:
    by_set, by_recipe = saved(runs["set"]), saved(runs["cli"])
    assert by_recipe["config"] == by_set["config"]
    assert by_recipe["config"]["head"] == "logistic-regression"  # --set went over the recipe's svm
    assert by_recipe["config"]["lr"] == pytest.approx(3e-4) and by_recipe["config"]["head_params"] == {"C": 0.5}
    assert by_recipe["preset"] == by_set["preset"] == "feature-extraction"
    first, second = report(runs["set"]), report(runs["cli"])
    assert second["test"] == first["test"] and second["val"] == first["val"]
    assert {k: v for k, v in same_settings_report(second).items() if k != "recipe"} == {
        k: v for k, v in same_settings_report(first).items() if k != "recipe"
    }


def test_the_run_records_the_recipe_path_and_sha256(runs: dict[str, Path]) -> None:
    digest = hashlib.sha256(runs["recipe"].read_bytes()).hexdigest()
    expected = {"path": str(runs["recipe"].resolve()), "sha256": digest}
    assert saved(runs["cli"])["recipe"] == expected
    assert report(runs["cli"])["recipe"] == expected
    assert report(runs["set"])["recipe"] is None and "recipe" not in saved(runs["set"])


def test_the_api_with_config_writes_the_report_of_tl_train_config(runs: dict[str, Path]) -> None:
    assert same_settings_report(report(runs["api"])) == same_settings_report(report(runs["cli"]))
    assert saved(runs["api"])["config"] == saved(runs["cli"])["config"]


def test_a_runs_config_yaml_trains_its_settings_again_on_new_data(runs: dict[str, Path]) -> None:
    first, again = saved(runs["cli"]), saved(runs["again"])
    assert again["config"] == first["config"]
    assert again["preset"] == "feature-extraction"
    assert again["data"] == str(runs["other"])  # --data wins over the data the run recorded
    source = runs["cli"] / "config.yaml"
    assert again["recipe"] == {"path": str(source.resolve()), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    assert report(runs["again"])["data"]["counts"]["test"] == 9


# -- resolving without training -------------------------------------------------------------------


def installed() -> PluginHost:
    """A host with the installed plugins too (medical/..., agriculture/...), whatever the test set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TLCORE_LOAD_PLUGINS", raising=False)
        mp.delenv("TLCORE_DISABLE_PLUGINS", raising=False)
        host = PluginHost()
        host.presets  # noqa: B018 - the registry is built now, under this environment
        return host


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return installed()


def test_set_overrides_the_recipe_and_the_recipe_the_preset(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("extends: fine-tuning\nepochs: 3\nlr: 3e-4\naugmentation_params: {hflip: true}\n")
    config, preset = recipe_config(host.presets, load_recipe(path), None, parse_overrides(["epochs=7"]))
    assert preset == "fine-tuning"
    assert config.epochs == 7 and config.lr == pytest.approx(3e-4)
    assert config.augmentation_params == {"hflip": True}
    assert config.backbone_lr_mult == pytest.approx(0.3)  # from the preset
    expected = resolve_config(
        host.presets, "fine-tuning", parse_overrides(["epochs=7", "lr=3e-4", "augmentation_params={hflip: true}"])
    )
    assert config == expected


def test_the_base_preset_is_extends_else_the_preset_given_else_fine_tuning(host: PluginHost, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("seed: 4\n")
    recipe = load_recipe(path)
    assert recipe_config(host.presets, recipe, None, {})[1] == "fine-tuning"
    config, preset = recipe_config(host.presets, recipe, "feature-extraction", {})
    assert preset == "feature-extraction" and config.technique == "feature-extraction" and config.seed == 4
    path.write_text("extends: feature-extraction\n")
    assert recipe_config(host.presets, load_recipe(path), "feature-extraction", {})[1] == "feature-extraction"
    with pytest.raises(ConfigError, match="extends: feature-extraction, but the preset given is fine-tuning"):
        recipe_config(host.presets, load_recipe(path), "fine-tuning", {})


def test_a_mapping_is_a_recipe_too(host: PluginHost) -> None:
    recipe = load_recipe({"extends": "feature-extraction", "head": "svm", "data": "somewhere"})
    config, preset = recipe_config(host.presets, recipe, None, {})
    assert (preset, config.head, recipe.data, recipe.path) == ("feature-extraction", "svm", "somewhere", None)
    assert len(recipe.sha256) == 64
    with pytest.raises(ConfigError, match=r"^config: unknown key 'epohcs'"):
        load_recipe({"epohcs": 3})


def test_a_runs_config_yaml_gives_its_settings_preset_and_data(host: PluginHost, tmp_path: Path) -> None:
    settings = resolve_config(host.presets, "medical/chest-xray", {"epochs": 2}).model_dump()
    path = tmp_path / "config.yaml"
    record = {"run_id": "abc", "preset": "medical/chest-xray", "data": "xrays", "adapter": "image-folder"}
    path.write_text(yaml.safe_dump({**record, "classes": ["a", "b"], "config": settings}, sort_keys=False))
    recipe = load_recipe(path)
    assert recipe.complete and recipe.data == "xrays" and recipe.extends == "medical/chest-xray"
    config, preset = recipe_config(host.presets, recipe, None, parse_overrides(["seed=3"]))
    assert preset == "medical/chest-xray"
    assert config.model_dump() == {**settings, "seed": 3}


@pytest.mark.parametrize("name", installed().presets.names())
def test_each_preset_printed_as_yaml_loads_as_the_preset(host: PluginHost, tmp_path: Path, name: str) -> None:
    path = tmp_path / "preset.yaml"
    path.write_text(preset_recipe(host.presets, name))
    config, preset = recipe_config(host.presets, load_recipe(path), None, {})
    assert preset == name
    assert config == resolve_config(host.presets, name, {})


def test_tl_list_presets_yaml_prints_a_recipe_tl_train_loads(tl: Tl, tmp_path: Path) -> None:
    code, out, err = tl("list", "presets", "--yaml", "feature-extraction")
    assert code == 0, err
    assert out.splitlines()[2] == "extends: feature-extraction"
    recipe = tmp_path / "fe.yaml"
    recipe.write_text(out)
    loaded = load_recipe(recipe)
    assert loaded.extends == "feature-extraction" and loaded.settings["head"] == "logistic-regression"
    assert "# epochs: 10" in out.splitlines()  # a setting the preset leaves at its default, commented
    # The CLI reads it: the run gets as far as the data, which is missing.
    code, _, err = tl("train", "--config", recipe, "--data", tmp_path / "nowhere", "--output", tmp_path / "run")
    assert code == 2 and "nowhere" in err and "recipe" not in err
    code, _, err = tl("list", "presets", "--yaml", "f")
    assert code == 2 and "'f' matches 2 presets (feature-extraction, fine-tuning)" in err
    code, _, err = tl("list", "presets", "--yaml", "fine-tunnig")
    assert code == 2 and "unknown preset 'fine-tunnig'" in err and "'fine-tuning'" in err


def test_tl_train_help_text_names_config_and_the_recipe_keys(capsys: pytest.CaptureFixture[str]) -> None:
    from tlcore.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "--config RECIPE.yaml" in out
    assert "extends: medical/chest-xray" in out and "tl list presets --yaml" in out
    assert "tl train --config runs/r1/config.yaml" in out
