"""Recipes: a run's settings in a YAML file, for ``tl train --config FILE`` and ``tlcore.train(config=FILE)``.

A recipe is a YAML mapping: ``extends`` (the preset it starts from), ``description`` (free text), ``data``
(what ``--data`` takes, used when none is given) and any setting of a run, under its ``--set`` key::

    extends: medical/chest-xray
    description: the paper's table 2, row 3
    epochs: 8
    lr: 3e-4
    augmentation_params: {hflip: true}

Its settings go over the preset's, and ``--set`` (or the API's keywords) over the recipe's. A run's own
``config.yaml`` is a recipe too: its ``config`` mapping holds every setting, resolved, its ``preset`` names the
base, and its ``data`` is the data when none is given; the other entries are records of that run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tlcore.config import RunConfig, _numbers, build_config, check_setting, preset_settings
from tlcore.errors import ConfigError, UnknownNameError
from tlcore.registry import Registry
from tlcore.specs import Preset

#: The preset of a recipe that names none (and of a run given no preset): the API's default.
DEFAULT_PRESET = "fine-tuning"
#: A recipe's keys that are not settings.
RECIPE_KEYS = ("extends", "description", "data")
#: What tl train writes into config.yaml beside ``config``: records of that run (``adapter`` names the adapter
#: that read its data, not the setting).
RUN_RECORDS = ("run_id", "preset", "data", "adapter", "started", "task", "classes", "in_chans", "recipe")
#: How errors name a recipe that is no file: a mapping given to the API.
MAPPING_LABEL = "config"


@dataclass(frozen=True)
class Recipe:
    """A recipe as read: its settings, the preset it extends, and where it came from."""

    label: str  # how errors name it: "recipe PATH" (the path as given), or "config" for a mapping
    extends: str | None
    settings: dict[str, Any]
    description: str | None = None
    data: str | None = None
    #: A run's config.yaml: ``settings`` hold every setting, resolved, so no preset is read.
    complete: bool = False
    path: str | None = None  # absolute; None for a mapping
    sha256: str = ""

    def provenance(self) -> dict[str, Any]:
        """What a run trained from this recipe records (config.yaml and report.json ``recipe``): the file and
        the SHA-256 of its bytes (of its YAML, keys sorted, for a mapping)."""
        return {"path": self.path, "sha256": self.sha256}


def load_recipe(source: str | os.PathLike[str] | Mapping[str, Any]) -> Recipe:
    """The recipe in the YAML file ``source`` (or the mapping ``source``); every key and the type of every
    value of ``extends``, ``description`` and ``data`` is checked here, setting values when resolved."""
    if isinstance(source, Mapping):
        try:
            text = yaml.safe_dump(dict(source), sort_keys=True)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"{MAPPING_LABEL}: the recipe holds a value YAML cannot write: {exc}".splitlines()[0],
                "use str, int, float, bool, None, lists and dicts",
            ) from None
        return _parse(dict(source), MAPPING_LABEL, None, hashlib.sha256(text.encode("utf-8")).hexdigest())
    label = os.fspath(source)
    path = Path(label)
    if path.is_dir():
        inside = path / "config.yaml"
        hint = f"pass {inside} to train that run's settings again" if inside.is_file() else "pass a YAML file"
        raise ConfigError(f"recipe {label} is a folder", hint)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        hint = "check the path; `tl list presets --yaml NAME` prints a preset as a recipe"
        raise ConfigError(f"recipe {label} does not exist", hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot read recipe {label}: {exc.strerror}", "check the file's permissions") from None
    try:
        loaded = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {label} is not a text file", "a recipe is YAML text (UTF-8)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"recipe {label} is not valid YAML{where}: {problem}", "a recipe is `key: value` lines"
        ) from None
    return _parse(loaded, f"recipe {label}", str(path.resolve()), hashlib.sha256(raw).hexdigest())


def _parse(loaded: Any, label: str, path: str | None, sha256: str) -> Recipe:
    if not isinstance(loaded, dict):
        what = "is empty" if loaded is None else f"holds a {type(loaded).__name__}, not a mapping of settings"
        raise ConfigError(f"{label} {what}", "write one `key: value` per line, e.g. `extends: fine-tuning`")
    if isinstance(loaded.get("config"), dict):
        return _run_config(loaded, label, path, sha256)
    for key in loaded:
        if key not in RECIPE_KEYS:
            check_setting(str(key), label)
    settings = {str(k): v for k, v in loaded.items() if k not in RECIPE_KEYS}
    return Recipe(
        label,
        _text(loaded, "extends", label, "a preset name (`tl list presets`)"),
        _values(settings),
        description=_text(loaded, "description", label, "free text"),
        data=_text(loaded, "data", label, "what --data takes"),
        path=path,
        sha256=sha256,
    )


def _run_config(saved: dict[str, Any], label: str, path: str | None, sha256: str) -> Recipe:
    """A run's config.yaml: settings under ``config``; ``preset`` and ``data`` beside them (and records)."""
    beside = [str(k) for k in saved if k in RunConfig.model_fields and k not in RUN_RECORDS]
    if beside:
        raise ConfigError(
            f"{label}: setting {beside[0]!r} beside `config:`, where a run's config.yaml holds its settings",
            "move it under config:, or pass it with --set",
        )
    for key in saved["config"]:
        check_setting(str(key), f"{label}: config")
    return Recipe(
        label,
        _text(saved, "preset", label, "a preset name (`tl list presets`)"),
        _values({str(k): v for k, v in saved["config"].items()}),
        data=_text(saved, "data", label, "what --data takes"),
        complete=True,
        path=path,
        sha256=sha256,
    )


def _text(loaded: dict[str, Any], key: str, label: str, what: str) -> str | None:
    value = loaded.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{label}: {key}: expected {what} (got {value!r})", "write it as text")


def _values(settings: dict[str, Any]) -> dict[str, Any]:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string: a number for the settings that are no text, as ``--set``
    reads it."""
    fields = RunConfig.model_fields
    return {k: v if fields[k].annotation is str else _numbers(v) for k, v in settings.items()}


def recipe_config(
    presets: Registry[Preset], recipe: Recipe, preset: str | None, overrides: Mapping[str, Any]
) -> tuple[RunConfig, str | None]:
    """The run configuration of ``recipe``: the settings of the preset it extends, then its own, then
    ``overrides`` (``--set`` keys and values); and the preset the run records.

    ``preset`` (``--preset``) is the base of a recipe that names none, and must agree with one that does;
    neither: :data:`DEFAULT_PRESET`. Each value is checked as ``--set`` checks it; an error names the recipe,
    the preset or ``--set``, wherever the value came from."""
    if preset and recipe.extends and preset != recipe.extends:
        key = "preset" if recipe.complete else "extends"
        raise ConfigError(
            f"{recipe.label}: {key}: {recipe.extends}, but the preset given is {preset}",
            "give no preset (the recipe names its own), or the same one",
        )
    for key in overrides:
        check_setting(key)
    base = recipe.extends or preset
    if recipe.complete:
        start: dict[str, Any] = {}  # every setting is in the recipe, resolved when that run was trained
    else:
        base = base or DEFAULT_PRESET
        try:
            start = preset_settings(presets, base)
        except UnknownNameError as exc:
            if not recipe.extends:
                raise
            raise ConfigError(f"{recipe.label}: extends: {exc.message}", exc.hint) from None
    build_config(start, recipe.settings, f"preset {base}", override_source=recipe.label)  # the recipe's values
    return build_config({**start, **recipe.settings}, overrides, recipe.label), base


def preset_recipe(presets: Registry[Preset], name: str) -> str:
    """``name`` as a recipe to start from (YAML text that ``tl train --config`` loads): ``extends`` and the
    preset's settings (its own ``extends`` chain applied), then every other setting at its default, commented."""
    preset = presets.get(name)
    settings = preset_settings(presets, name)
    values = build_config(settings, {}, f"preset {name}").model_dump()
    fields = RunConfig.model_fields
    head = yaml.safe_dump({"extends": name, "description": preset.description}, sort_keys=False, width=110)
    own = {k: values[k] for k in fields if k in settings}
    lines = [
        f"# a recipe from preset {name}: tl train --config THIS_FILE --data DIR",
        "# (every key: tl train --help; --set KEY=VALUE overrides this file)",
        head.rstrip(),
        "# the preset's settings",
        yaml.safe_dump(own, sort_keys=False, width=110).rstrip() if own else "# (none)",
        "# the other settings, at their defaults: uncomment to change",
    ]
    for key in fields:
        if key not in settings:
            text = yaml.safe_dump({key: values[key]}, default_flow_style=False, width=10_000).rstrip()
            lines.extend(f"# {line}" for line in text.splitlines())
    return "\n".join(lines) + "\n"
