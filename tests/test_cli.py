"""The ``tl`` command line: help, listings, and user errors as one line on stderr with exit code 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tlcore.cli import main
from tlcore.errors import UnknownNameError

Tl = Callable[..., tuple[int, str, str]]
LITE = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]


def assert_one_line_error(err: str, *needles: str) -> str:
    """stderr is exactly one ``error: ...`` line (no traceback) containing every needle."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# -- help ----------------------------------------------------------------------------------------


def test_top_level_help_exits_0_and_mentions_presets_and_set(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "tl list presets" in out
    assert "--set" in out
    for command in ("train", "evaluate", "predict", "extract", "plugins", "list"):
        assert command in out


def test_train_help_lists_presets_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    words = " ".join(out.split())  # argparse wraps lines at the terminal width
    assert "--preset" in out
    assert "feature-extraction, fine-tuning" in words
    assert "--set KEY=VALUE" in out
    assert "settings for --set key=value" in out
    for key in ("epochs", "strategy", "backbone", "weights", "image_size"):
        assert f"  {key} " in out


def test_no_command_prints_help_and_exits_2(tl: Tl) -> None:
    code, out, _ = tl()
    assert code == 2
    assert "usage: tl" in out


# -- user errors: exit 2, one line ----------------------------------------------------------------


def test_unknown_preset_suggests_the_close_name(tl: Tl, tiny_folder: Path) -> None:
    code, out, err = tl("train", "--preset", "fine-tunin", "--data", tiny_folder)
    assert code == 2
    assert out == ""
    assert_one_line_error(err, "unknown preset 'fine-tunin'", "did you mean 'fine-tuning'", "tl list presets")


def test_unknown_backbone_is_one_line(tl: Tl, tiny_folder: Path, fast: list[str]) -> None:
    code, _, err = tl(
        "train", "--preset", "feature-extraction", "--data", tiny_folder, *fast, "--set", "backbone=resnet5O"
    )
    assert code == 2
    assert_one_line_error(err, "unknown backbone 'resnet5O'", "tl list backbones --all")


def test_unknown_setting_is_one_line(tl: Tl, tiny_folder: Path) -> None:
    code, _, err = tl("train", "--preset", "fine-tuning", "--data", tiny_folder, "--set", "nosuchkey=1")
    assert code == 2
    assert_one_line_error(err, "unknown key 'nosuchkey'")


def test_close_setting_name_is_suggested(tl: Tl, tiny_folder: Path) -> None:
    code, _, err = tl("train", "--preset", "fine-tuning", "--data", tiny_folder, "--set", "epoch=2")
    assert code == 2
    assert_one_line_error(err, "did you mean epochs")


def test_setting_of_the_wrong_type_names_the_key(tl: Tl, tiny_folder: Path) -> None:
    code, _, err = tl("train", "--preset", "fine-tuning", "--data", tiny_folder, "--set", "epochs=abc")
    assert code == 2
    assert_one_line_error(err, "epochs", "'abc'")


def test_missing_data_path_is_one_line(tl: Tl) -> None:
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", "/nonexistent")
    assert code == 2
    assert_one_line_error(err, "/nonexistent", "does not exist")


def test_unknown_dataset_name_is_one_line(tl: Tl) -> None:
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", "beanz")
    assert code == 2
    assert_one_line_error(err, "unknown dataset 'beanz'", "'beans'")


def test_train_without_data_is_one_line(tl: Tl) -> None:
    code, _, err = tl("train", "--preset", "fine-tuning")
    assert code == 2
    assert_one_line_error(err, "needs --preset and --data")


def test_folder_of_loose_images_is_not_a_dataset(tl: Tl, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(loose / f"{i}.png")
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", loose)
    assert code == 2
    assert_one_line_error(err, "no dataset adapter recognises", "<root>/<split>/<class>/<image>")


def test_splits_without_train_are_a_layout_error(tl: Tl, tiny_folder: Path) -> None:
    (tiny_folder / "train").rename(tiny_folder / "trn")  # not a split name, so val/ and test/ stand alone
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder)
    assert code == 2
    assert_one_line_error(err, "no train/ split")


def test_class_mismatch_between_splits_is_one_line(tl: Tl, tiny_folder: Path) -> None:
    (tiny_folder / "test" / "red").rename(tiny_folder / "test" / "crimson")
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder)
    assert code == 2
    assert_one_line_error(err, "'crimson'", "not in train/")


def test_bad_images_fail_policy_stops_with_one_line(tl: Tl, tiny_folder: Path) -> None:
    (tiny_folder / "train" / "red" / "broken.png").write_bytes(b"")
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder, "--set", "bad_images=fail")
    assert code == 2
    assert_one_line_error(err, "broken.png", "empty file", "bad_images=skip")


def test_malformed_catalog_yaml_is_one_line_naming_the_file(
    tl: Tl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "my-catalog.yaml"
    bad.write_text("version: 1\ndatasets:\n  toy: {title: [unclosed\n")
    monkeypatch.setenv("TLCORE_CATALOG", str(bad))
    code, _, err = tl("list", "datasets")
    assert code == 2
    assert_one_line_error(err, str(bad), "invalid YAML")


def test_resume_of_a_missing_run_is_one_line(tl: Tl, tmp_path: Path) -> None:
    code, _, err = tl("train", "--resume", tmp_path / "no-run")
    assert code == 2
    assert_one_line_error(err, "nothing to resume")


def test_predict_with_a_folder_that_is_not_a_run_is_one_line(tl: Tl, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    code, _, err = tl("predict", tmp_path, image)
    assert code == 2
    assert_one_line_error(err, "holds no trained model")


def test_debug_flag_shows_the_traceback_instead(tiny_folder: Path, fresh_host: None) -> None:
    with pytest.raises(UnknownNameError, match="fine-tunin"):
        main(["--debug", "train", "--preset", "fine-tunin", "--data", str(tiny_folder)])


# -- listings -------------------------------------------------------------------------------------


def test_list_presets_json(tl: Tl) -> None:
    code, out, err = tl("list", "presets", "--json")
    assert code == 0, err
    rows = json.loads(out)
    names = {r["name"] for r in rows}
    assert {"feature-extraction", "fine-tuning"} <= names
    for row in rows:
        assert set(row) == {"name", "description", "plugin"}
        assert row["description"]


def test_list_backbones_filters_by_substring(tl: Tl) -> None:
    code, out, err = tl("list", "backbones", "lite", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == LITE
    assert all("offline" in r["description"] for r in rows)


def test_list_backbones_shell_pattern(tl: Tl) -> None:
    code, out, _ = tl("list", "backbones", "resnet*", "--json")
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["resnet18", "resnet50"]


def test_list_heads_json(tl: Tl) -> None:
    code, out, _ = tl("list", "heads", "--json")
    assert code == 0
    assert {"linear", "mlp", "logistic-regression", "svm"} <= {r["name"] for r in json.loads(out)}


def test_list_datasets_includes_the_shipped_catalog(tl: Tl) -> None:
    code, out, _ = tl("list", "datasets", "--json")
    assert code == 0
    assert "beans" in {r["name"] for r in json.loads(out)}


def test_plugins_json_is_valid_json(tl: Tl) -> None:
    code, out, err = tl("plugins", "--json")
    assert code == 0, err
    assert isinstance(json.loads(out), list)
    code, out, err = tl("plugins", "--json", "--all")
    assert code == 0, err
    infos = json.loads(out)
    defaults = {i["name"]: i for i in infos if i["default"]}
    assert "tlcore.default_plugins.presets" in defaults
    assert all(i["status"] == "loaded" for i in defaults.values())
    assert "register_presets" in defaults["tlcore.default_plugins.presets"]["hooks"]


def test_version_flag(tl: Tl) -> None:
    code, out, _ = tl("--version")
    assert code == 0
    assert out.startswith("tlcore ")
