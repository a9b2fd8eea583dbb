"""`tl plugin new NAME`: the skeleton installs with pip, passes its own tests, and trains through `tl train`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tlcore import HOOKS_VERSION
from tlcore.scaffold import module_name, render, tlcore_requirement

Tl = Callable[..., tuple[int, str, str]]
BIN = Path(sys.executable).parent
HOOKS = (
    "register_dataset_adapters",
    "register_augmentations",
    "register_perturbations",
    "register_backbones",
    "resolve_backbone",
    "register_heads",
    "register_presets",
    "register_catalog_entries",
    "register_loggers",
)


def test_plugin_new_writes_the_skeleton(tl: Tl, tmp_path: Path) -> None:
    code, out, err = tl("plugin", "new", "crop-disease", "--dir", tmp_path / "work")
    assert (code, err) == (0, "")
    project = tmp_path / "work" / "tlcore-crop-disease"
    assert str(project) in out and "pip install -e" in out
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "tests/test_plugin.py", "tlcore_crop_disease/__init__.py"]
    pyproject = (project / "pyproject.toml").read_text()
    assert 'name = "tlcore-crop-disease"' in pyproject
    assert '[project.entry-points.tlcore]\ncrop-disease = "tlcore_crop_disease"' in pyproject
    assert f'"{tlcore_requirement()}"' in pyproject  # the releases that speak the contract the package declares
    package = (project / "tlcore_crop_disease" / "__init__.py").read_text()
    assert f'\nTLCORE_HOOKS = "{HOOKS_VERSION}"\n' in package
    for hook in HOOKS:
        assert f"@hookimpl\ndef {hook}(" in package, hook
    assert 'default_weights="none"' in package and 'timm_name="resnet18"' in package
    assert 'extends="fine-tuning"' in package
    assert "check_plugin(tlcore_crop_disease" in (project / "tests" / "test_plugin.py").read_text()


@pytest.mark.parametrize("name", ["Derm", "derm_x", "-derm", "derm-", "der--m", "dérm", "", "a b", "../x"])
def test_plugin_new_rejects_a_bad_name_in_one_line(tl: Tl, tmp_path: Path, name: str) -> None:
    code, _, err = tl("plugin", "new", "--dir", tmp_path, "--", name)  # "--": "-derm" is a name here
    assert code == 2
    assert err.startswith("error: invalid plugin name") and err.count("\n") == 1
    assert "lowercase letters, digits and hyphens" in err
    assert list(tmp_path.iterdir()) == []


def test_plugin_new_refuses_to_overwrite(tl: Tl, tmp_path: Path) -> None:
    existing = tmp_path / "tlcore-derm"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    code, _, err = tl("plugin", "new", "derm", "--dir", tmp_path)
    assert code == 2
    assert err.startswith("error:") and "already exists" in err and err.count("\n") == 1
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]


def test_plugin_without_an_action_is_a_usage_error(tl: Tl) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tl("plugin")
    assert exit_info.value.code == 2


def test_module_name_and_render_agree() -> None:
    assert module_name("crop-disease") == "tlcore_crop_disease"
    assert set(render("x1")) == {"pyproject.toml", "README.md", "tlcore_x1/__init__.py", "tests/test_plugin.py"}


def test_generated_plugin_installs_passes_its_tests_and_trains(
    tl: Tl,
    tmp_path: Path,
    make_folder: Callable[..., Path],
    pip_editable: Callable[[Path, str], None],
    subprocess_env: dict[str, str],
) -> None:
    name = "scaffoldcheck"
    started = time.perf_counter()
    code, _, err = tl("plugin", "new", name, "--dir", tmp_path)
    assert code == 0, err
    project = tmp_path / f"tlcore-{name}"
    pip_editable(project, f"tlcore-{name}")

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", str(project / "tests"), "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout

    data = make_folder(tmp_path / "images", {"train": 6, "val": 2, "test": 2})
    run_dir = tmp_path / "run"
    train = subprocess.run(
        [
            str(BIN / "tl"),
            "train",
            "--preset",
            f"{name}/default",
            "--data",
            str(data),
            "--output",
            str(run_dir),
            "--quiet",
            *("--set", "epochs=1", "--set", "image_size=64", "--set", "batch_size=8", "--set", "weights=none"),
            *("--set", f"backbone={name}/resnet18"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=subprocess_env,
        timeout=300,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    assert "failed and was skipped" not in train.stderr  # no plugin failed to load
    report = json.loads((run_dir / "report.json").read_text())
    assert report["preset"] == f"{name}/default"
    assert report["data"]["adapter"] == f"{name}/folder"
    assert report["model"]["backbone"] == f"{name}/resnet18"
    assert report["model"]["head"] == f"{name}/norm-linear"
    assert report["config"]["augmentation"] == f"{name}/photo"
    assert report["timing"]["epochs_run"] == 1
    assert report["test"]["n"] == 6
    print(f"scaffold: install + generated tests + 1-epoch train in {time.perf_counter() - started:.1f} s")
