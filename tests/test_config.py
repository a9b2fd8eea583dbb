"""The run configuration: --set parsing, validation errors and preset inheritance."""

from __future__ import annotations

import pytest

from tlcore.config import RunConfig, build_config, parse_overrides, preset_settings
from tlcore.errors import ConfigError, UnknownNameError
from tlcore.registry import Registry
from tlcore.specs import Preset


def presets(*items: Preset) -> Registry[Preset]:
    registry: Registry[Preset] = Registry("preset")
    for p in items:
        registry.add(p.name, p, "tests")
    return registry


# -- parse_overrides -------------------------------------------------------------------------


def test_overrides_parse_numbers_and_bools_as_yaml() -> None:
    out = parse_overrides(["epochs=5", "lr=0.0003", "progress=false", "balanced_sampling=yes", "layer_decay=0.7"])
    assert out == {"epochs": 5, "lr": 3e-4, "progress": False, "balanced_sampling": True, "layer_decay": 0.7}
    assert isinstance(out["epochs"], int)
    assert isinstance(out["lr"], float)


def test_exponent_notation_ends_up_as_a_float_in_the_config() -> None:
    # PyYAML (YAML 1.1) reads "3e-4" as a string; the typed config still gets the number.
    config = build_config({}, parse_overrides(["lr=3e-4", "weight_decay=1e-2"]), "config")
    assert config.lr == pytest.approx(3e-4)
    assert config.weight_decay == pytest.approx(1e-2)


def test_overrides_parse_dict_values_as_yaml() -> None:
    out = parse_overrides(["head_params={C: 2, kernel: linear}", "adapter_options={split_aliases: {dev2: val}}"])
    assert out["head_params"] == {"C": 2, "kernel": "linear"}
    assert out["adapter_options"] == {"split_aliases": {"dev2": "val"}}


@pytest.mark.parametrize(
    ("pair", "expected"),
    [("backbone=123", "123"), ("weights=none", "none"), ("device=cpu", "cpu"), ("head=true", "true")],
)
def test_overrides_keep_str_fields_as_the_raw_string(pair: str, expected: str) -> None:
    key = pair.partition("=")[0]
    value = parse_overrides([pair])[key]
    assert value == expected
    assert isinstance(value, str)


def test_override_value_may_contain_equals_sign() -> None:
    assert parse_overrides(["weights=/tmp/a=b.safetensors"]) == {"weights": "/tmp/a=b.safetensors"}


def test_override_without_equals_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["epochs"])


def test_unknown_override_key_suggests_close_match() -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["epoch=3"])
    assert "'epoch'" in info.value.message
    assert info.value.hint is not None
    assert "epochs" in info.value.hint


def test_unknown_override_key_without_close_match_still_points_to_help() -> None:
    with pytest.raises(ConfigError) as info:
        parse_overrides(["zzzzqqq=1"])
    assert "did you mean" not in str(info.value)
    assert "--help-settings" in str(info.value) or "help" in str(info.value)


# -- build_config ----------------------------------------------------------------------------


def test_build_config_applies_overrides_over_settings() -> None:
    config = build_config({"epochs": 3, "lr": 0.1}, {"epochs": 7}, "preset x")
    assert isinstance(config, RunConfig)
    assert (config.epochs, config.lr) == (7, 0.1)


def test_wrong_type_in_override_names_the_key_and_source() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({}, parse_overrides(["epochs=abc"]), "preset fine-tuning")
    message = str(info.value)
    assert "epochs" in message
    assert message.startswith("--set")
    assert "'abc'" in message


def test_wrong_type_in_preset_names_the_preset() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"batch_size": "lots"}, {}, "preset broken")
    assert "preset broken" in str(info.value)
    assert "batch_size" in str(info.value)


def test_out_of_range_and_bad_literal_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="val_fraction"):
        build_config({}, {"val_fraction": 1.5}, "config")
    with pytest.raises(ConfigError, match="strategy"):
        build_config({}, {"strategy": "everything"}, "config")


@pytest.mark.parametrize(
    ("pair", "bound"),
    [
        ("image_size=100000", "less than or equal to 2048"),
        ("image_size=8", "greater than or equal to 16"),
        ("seed=-1", "greater than or equal to 0"),
        (f"seed={2**31}", f"less than or equal to {2**31 - 1}"),
        ("epochs=1e9", "less than or equal to 10000"),
        ("head_epochs=1000000", "less than or equal to 10000"),
        ("warmup_epochs=1e6", "less than or equal to 10000"),
        ("batch_size=1000000", "less than or equal to 65536"),
        ("bootstrap=10000000", "less than or equal to 100000"),
        ("feature_views=1000", "less than or equal to 100"),
        ("lr=0", "greater than 0"),
        ("label_smoothing=1", "less than 1"),
    ],
)
def test_absurd_values_are_refused_with_their_range_and_a_hint(pair: str, bound: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({}, parse_overrides([pair]), "preset fine-tuning")
    assert str(info.value).startswith(f"--set: {pair.partition('=')[0]}: ")
    assert bound in str(info.value)
    assert info.value.hint is not None and "tl train --help" in info.value.hint


def test_the_bounds_themselves_are_accepted() -> None:
    edges = {"image_size": 2048, "seed": 2**31 - 1, "epochs": 10_000, "head_epochs": 10_000, "batch_size": 65_536}
    assert build_config({}, edges, "config").model_dump(include=set(edges)) == edges
    assert build_config({}, {"image_size": 16, "seed": 0, "epochs": 1}, "config").image_size == 16


def test_every_installed_preset_is_within_the_bounds() -> None:
    from tlcore.plugins import PluginHost

    host = PluginHost()  # the installed plugins too: medical/..., agriculture/...
    names = host.presets.names()
    assert "fine-tuning" in names and any(n.startswith("medical/") for n in names)
    for name in names:
        build_config(preset_settings(host.presets, name), {}, f"preset {name}")


def test_unknown_key_in_preset_settings_is_refused() -> None:
    with pytest.raises(ConfigError, match="nosuchkey"):
        build_config({"nosuchkey": 1}, {}, "preset p")


# -- presets ---------------------------------------------------------------------------------


def test_preset_extends_chain_merges_base_first() -> None:
    registry = presets(
        Preset("base", "", {"epochs": 10, "lr": 0.1, "head": "linear"}),
        Preset("middle", "", {"epochs": 20, "batch_size": 8}, extends="base"),
        Preset("leaf", "", {"lr": 0.5}, extends="middle"),
    )
    assert preset_settings(registry, "leaf") == {"epochs": 20, "lr": 0.5, "head": "linear", "batch_size": 8}
    assert preset_settings(registry, "base") == {"epochs": 10, "lr": 0.1, "head": "linear"}


def test_preset_extends_cycle_raises() -> None:
    registry = presets(
        Preset("a", "", {"epochs": 1}, extends="b"),
        Preset("b", "", {"epochs": 2}, extends="c"),
        Preset("c", "", {"epochs": 3}, extends="a"),
    )
    with pytest.raises(ConfigError, match="extends itself"):
        preset_settings(registry, "a")


def test_preset_extending_itself_raises() -> None:
    with pytest.raises(ConfigError, match="extends itself"):
        preset_settings(presets(Preset("loop", "", {}, extends="loop")), "loop")


def test_preset_extending_unknown_preset_names_both() -> None:
    with pytest.raises(ConfigError) as info:
        preset_settings(presets(Preset("child", "", {}, extends="ghost")), "child")
    assert "'child'" in str(info.value)
    assert "'ghost'" in str(info.value)


def test_unknown_preset_suggests_close_name() -> None:
    registry = presets(Preset("fine-tuning", "", {}), Preset("feature-extraction", "", {}))
    with pytest.raises(UnknownNameError) as info:
        preset_settings(registry, "fine-tunin")
    assert info.value.close_matches[0] == "fine-tuning"


def test_help_states_each_bounded_setting_with_its_range() -> None:
    from tlcore.cli import settings_help

    lines = {line.split()[0]: line for line in settings_help().splitlines()[1:]}
    assert lines["image_size"].endswith("; range [16, 2048]")
    assert lines["seed"].endswith("random seed; range [0, 2147483647]")
    assert lines["val_fraction"].endswith("range (0, 1)") and lines["crop_pct"].endswith("range (0, 1]")
    assert lines["lr"].endswith("range > 0") and lines["in_chans"].endswith("range >= 1")
    assert "range" not in lines["technique"]
