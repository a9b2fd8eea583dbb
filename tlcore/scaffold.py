"""``tl plugin new NAME``: write an installable plugin skeleton with one example of every hook.

The skeleton ``tlcore-NAME/`` holds ``pyproject.toml`` (setuptools, entry point group
``tlcore``), the package ``tlcore_NAME`` (a dataset adapter, an augmentation, a stress-test
perturbation, a backbone, a ``resolve_backbone``, a head, a preset, a catalogue entry and an
experiment logger, all named ``NAME/...``), tests that
run :func:`tlcore.testing.check_plugin`, and a README. It installs and passes its tests as written.
The package declares the hook contract of the tlcore that generated it (``TLCORE_HOOKS``), and
``pyproject.toml`` pins the tlcore releases that speak it (:func:`tlcore_requirement`).
"""

from __future__ import annotations

import re
from pathlib import Path

import tlcore
from tlcore.errors import TlcoreError

NAME_PATTERN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "__DIST__"
version = "0.1.0"
description = "tlcore plugin __NAME__: one example of every tlcore hook"
readme = "README.md"
requires-python = ">=3.11"
dependencies = [
    # The tlcore releases that speak the hook contract this plugin declares (TLCORE_HOOKS in __MODULE__):
    # from the one it was generated with up to the next major.
    "__TLCORE_REQUIREMENT__",
]

[project.optional-dependencies]
test = ["pytest>=8"]

# tlcore finds plugins through this entry-point group; the name (left) is the plugin's name in
# `tl plugins`, TLCORE_DISABLE_PLUGINS and TLCORE_LOAD_PLUGINS.
[project.entry-points.tlcore]
__NAME__ = "__MODULE__"

[tool.setuptools.packages.find]
include = ["__MODULE__*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

PACKAGE = '''\
"""__DIST__: a tlcore plugin.

Registers one example of every hook in tlcore.hookspecs; every name is namespaced ``__NAME__/...``:

* dataset adapter ``__NAME__/folder``: image folders whose file names may start with a group
  (``<patient>__<image>.png``), so val/test carved out of train never split a patient;
* augmentation ``__NAME__/photo``: albumentations pipeline for photos;
* perturbation ``__NAME__/vignette``: darker corners, an acquisition change for ``tl stress``;
* backbone ``__NAME__/resnet18``: timm resnet18, random initialisation (works offline);
* ``resolve_backbone``: ``__NAME__/<timm architecture>`` for any other timm model, random initialisation;
* head ``__NAME__/norm-linear``: layer norm, dropout, linear (torch);
* preset ``__NAME__/default``: extends the core's ``fine-tuning`` with the adapter, augmentation and head above;
* catalogue entry ``__NAME__/example``: how a public dataset is described (replace it with yours);
* logger ``__NAME__/journal``: a JSON-lines journal of every run next to the run folders
  (``--set loggers=[__NAME__/journal]``); a real one would talk to your tracking service.

Heavy libraries (albumentations, torch, timm) are imported inside the builders, so that loading
the plugin for ``tl plugins`` or ``tl list`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore import hookimpl
from tlcore.specs import (
    Augmentation,
    AugmentationContext,
    Backbone,
    DatasetAdapter,
    Head,
    HeadContext,
    LabeledDataset,
    Logger,
    LoggerContext,
    Perturbation,
    Preset,
    RunLogger,
    RunStatus,
)

if TYPE_CHECKING:
    import numpy as np

    from tlcore.catalog import CatalogEntry

#: The tlcore hook contract this plugin is built for (tlcore.HOOKS_VERSION). tlcore loads the plugin only if it
#: speaks it (same major, a minor at least this one); pyproject.toml pins the tlcore releases that do.
TLCORE_HOOKS = "__HOOKS_VERSION__"

PREFIX = "__NAME__"
GROUP_SEPARATOR = "__"

# -- dataset adapter -------------------------------------------------------------------------------


def _group(path: str, separator: str) -> str | None:
    stem = Path(path).name
    return stem.split(separator, 1)[0] if separator in stem else None


def load_folder(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    """The core image-folder layout, plus a group (patient, field) from ``<group>__<file>`` names."""
    from tlcore.data import image_folder  # the core loader checks the layout and gives one-line errors

    separator = str(options.get("group_separator", GROUP_SEPARATOR))
    dataset = image_folder.load(root, {k: v for k, v in options.items() if k != "group_separator"})
    splits = {
        split: [dataclasses.replace(r, group=_group(r.path, separator)) for r in records]
        for split, records in dataset.splits.items()
    }
    provenance = {**dataset.provenance, "adapter": f"{PREFIX}/folder", "group_separator": separator}
    return dataclasses.replace(dataset, splits=splits, provenance=provenance)


@hookimpl
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    register(
        DatasetAdapter(
            name=f"{PREFIX}/folder",
            description="<split>/<class>/<image> folders; a file name <group>__<rest> sets the group "
            "(patient, field), so carved-out splits never share a group (option group_separator)",
            load=load_folder,
            # No detect(): auto-detection keeps using the core adapters; presets and
            # `--set adapter=__NAME__/folder` name this one.
        )
    )


# -- augmentation ----------------------------------------------------------------------------------


def photo(ctx: AugmentationContext) -> Any:
    """Train: random resized crop, flip, brightness/contrast. Eval: the core's resize + centre crop."""
    import albumentations as A
    from tlcore.data.transforms import eval_transform

    if not ctx.train:
        return eval_transform(ctx)
    height, width = ctx.image_size
    return A.Compose(
        [
            A.RandomResizedCrop(size=(height, width), scale=(0.5, 1.0)),
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
        ]
    )


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    register(
        Augmentation(
            name=f"{PREFIX}/photo",
            description="random resized crop (scale 0.5-1), horizontal flip, brightness/contrast",
            build=photo,
        )
    )


# -- stress-test perturbation ----------------------------------------------------------------------


def vignette(u: np.ndarray) -> np.ndarray:
    """Corners up to 30 % darker (uneven illumination): ``HxWxC`` float32 in [0, 1], same shape back."""
    import numpy as np

    h, w = u.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    r = np.hypot((y - h / 2) / (h / 2), (x - w / 2) / (w / 2)) / np.sqrt(2)
    out: np.ndarray = u * (1.0 - 0.3 * r**2)[:, :, None]
    return out


@hookimpl
def register_perturbations(register: Callable[[Perturbation], None]) -> None:
    register(Perturbation(name=f"{PREFIX}/vignette", description="corners up to 30 % darker (uneven "
                          "illumination)", apply=vignette))


# -- backbones -------------------------------------------------------------------------------------


@hookimpl
def register_backbones(register: Callable[[Backbone], None]) -> None:
    register(
        Backbone(
            name=f"{PREFIX}/resnet18",
            description="ResNet-18 from timm, random initialisation (works offline; weights=PATH loads a file)",
            timm_name="resnet18",
            default_weights="none",
            family="resnet",
        )
    )


@hookimpl
def resolve_backbone(name: str) -> Backbone | None:
    # Resolve only names in this plugin's namespace; return None for everything else.
    if not name.startswith(f"{PREFIX}/"):
        return None
    import timm

    architecture = name.removeprefix(f"{PREFIX}/")
    if not timm.is_model(architecture):
        return None
    return Backbone(
        name=name,
        description=f"timm {architecture}, random initialisation",
        timm_name=architecture,
        default_weights="none",
    )


# -- head ------------------------------------------------------------------------------------------


def norm_linear(ctx: HeadContext) -> Any:
    """Layer norm, dropout, linear: logits for ``ctx.num_outputs`` classes."""
    from torch import nn

    dropout = float(ctx.params.get("dropout", 0.0))
    return nn.Sequential(
        nn.LayerNorm(ctx.in_features),
        nn.Dropout(dropout),
        nn.Linear(ctx.in_features, ctx.num_outputs),
    )


@hookimpl
def register_heads(register: Callable[[Head], None]) -> None:
    register(
        Head(
            name=f"{PREFIX}/norm-linear",
            description="layer norm + dropout + linear (torch; feature extraction and fine-tuning)",
            kind="torch",
            build=norm_linear,
        )
    )


# -- preset ----------------------------------------------------------------------------------------


@hookimpl
def register_presets(register: Callable[[Preset], None]) -> None:
    register(
        Preset(
            name=f"{PREFIX}/default",
            description="fine-tuning (LP-FT, offline EfficientNet-Lite0) with the __NAME__ adapter, "
            "augmentation and head",
            settings={
                "adapter": f"{PREFIX}/folder",
                "augmentation": f"{PREFIX}/photo",
                "head": f"{PREFIX}/norm-linear",
                "class_weights": "balanced",
            },
            extends="fine-tuning",
        )
    )


# -- catalogue -------------------------------------------------------------------------------------


@hookimpl
def register_catalog_entries(register: Callable[[CatalogEntry], None]) -> None:
    from tlcore.catalog import CatalogEntry  # pydantic loads when the catalogue is used

    register(
        CatalogEntry(
            name=f"{PREFIX}/example",
            title="Example entry of the __NAME__ plugin: replace with a public dataset",
            adapter=f"{PREFIX}/folder",
            homepage="https://example.org/dataset",
            # download=[{"url": "https://...", "sha256": "<64 hex characters>"}] makes it downloadable.
            splits=["train", "val", "test"],
            classes=["negative", "positive"],
            modality="photo",
            licence="CC-BY-4.0",
            citation="Author et al., Title, Journal (Year)",
            intended_use="an example catalogue entry; put the real dataset's intended use here",
        )
    )


# -- experiment logger -----------------------------------------------------------------------------


class Journal(RunLogger):
    """Appends one JSON line per event to ``journal.jsonl`` beside the run folder (``runs/journal.jsonl`` for
    ``runs/NAME``): never inside the run directory, whose files belong to tlcore."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir.parent / "journal.jsonl"
        self.run = run_dir.name

    def _write(self, event: str, **fields: Any) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"run": self.run, "event": event, **fields}, default=str) + "\\n")

    def start(self, config: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self._write("start", run_id=meta.get("run_id"), config=dict(config))

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._write("epoch", epoch=epoch, metrics=dict(metrics))

    def log_report(self, metrics: Mapping[str, float], report: Mapping[str, Any]) -> None:
        self._write("report", metrics=dict(metrics))

    def log_artifacts(self, run_dir: Path, files: Sequence[Path]) -> None:
        self._write("files", files=[p.relative_to(run_dir).as_posix() for p in files])

    def close(self, status: RunStatus) -> None:
        self._write("end", status=status)


def journal(context: LoggerContext) -> RunLogger:
    # Check what the logger needs here (a package, a token) and raise tlcore.errors.ConfigError with a fix;
    # contact nothing and write nothing before start().
    return Journal(context.run_dir)


@hookimpl
def register_loggers(register: Callable[[Logger], None]) -> None:
    register(
        Logger(
            name=f"{PREFIX}/journal",
            description="a JSON-lines journal of every run (settings, epochs, scores, files) in journal.jsonl "
            "beside the run folders",
            build=journal,
        )
    )
'''

TESTS = '''\
"""Tests of the __NAME__ plugin: tlcore's contract checks, and one test of its own behaviour."""

from __future__ import annotations

from pathlib import Path

from tlcore.plugins import PluginHost
from tlcore.testing import check_plugin, write_sample_folder

import __MODULE__


def test_plugin_contract(tmp_path: Path) -> None:
    check_plugin(__MODULE__, name="__NAME__", resolvable=["__NAME__/resnet34"], workdir=tmp_path)


def test_folder_adapter_reads_groups_from_file_names(tmp_path: Path) -> None:
    root = write_sample_folder(tmp_path / "data", classes=("healthy", "sick"), counts={"train": 2})
    (root / "train" / "sick" / "sick_0.png").rename(root / "train" / "sick" / "patient7__sick_0.png")
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(__MODULE__, name="__NAME__")

    dataset = host.adapters.get("__NAME__/folder").load(root, {})

    groups = {Path(r.path).name: r.group for r in dataset.splits["train"]}
    assert groups == {
        "healthy_0.png": None,
        "healthy_1.png": None,
        "patient7__sick_0.png": "patient7",
        "sick_1.png": None,
    }
    assert dataset.classes == ["healthy", "sick"]
    assert dataset.provenance["adapter"] == "__NAME__/folder"
'''

README = """\
# __DIST__

A tlcore plugin, generated by `tl plugin new __NAME__`. It registers one example
of every hook (see tlcore's `docs/plugins/hooks.md`); every name starts with `__NAME__/`:

| hook | registers |
|---|---|
| `register_dataset_adapters` | `__NAME__/folder`: image folders, `<group>__<file>` names set the patient/field group |
| `register_augmentations` | `__NAME__/photo`: random resized crop, flip, brightness/contrast |
| `register_perturbations` | `__NAME__/vignette`: darker corners, a change `tl stress` re-scores val under |
| `register_backbones` | `__NAME__/resnet18`: timm ResNet-18, random initialisation |
| `resolve_backbone` | `__NAME__/<any timm architecture>`, random initialisation |
| `register_heads` | `__NAME__/norm-linear`: layer norm, dropout, linear |
| `register_presets` | `__NAME__/default`: `fine-tuning` with the adapter, augmentation and head above |
| `register_catalog_entries` | `__NAME__/example`: a catalogue entry to replace with a real dataset |
| `register_loggers` | `__NAME__/journal`: a JSON-lines journal of every run beside the run folders |

## Install, test, use

```bash
pip install -e .                      # registers the entry point `__NAME__` in the group `tlcore`
python -m pytest tests                # tlcore.testing.check_plugin + the plugin's own tests
tl plugins                            # __NAME__ ... loaded
tl train --preset __NAME__/default --data DIR --output runs/__NAME__
tl train --preset __NAME__/default --data DIR --set backbone=__NAME__/resnet18 --set weights=none
```

Edit `__MODULE__/__init__.py`: keep what you need, delete the rest (a hook you do not implement is
simply not called). Keep `TLCORE_HOOKS = "__HOOKS_VERSION__"`: it is the hook contract the plugin is built
for, and tlcore loads the plugin only if it speaks it; `pyproject.toml` pins the tlcore releases that do
(`__TLCORE_REQUIREMENT__`). If the plugin breaks, `tl plugins` shows the error, `TLCORE_DISABLE_PLUGINS=__NAME__`
switches it off, and `--debug` shows tracebacks.
"""


def validate_name(name: str) -> str:
    """A plugin name: lowercase letters, digits and single hyphens (``derm``, ``crop-disease``)."""
    if not NAME_PATTERN.fullmatch(name):
        raise TlcoreError(
            f"invalid plugin name {name!r}",
            "use lowercase letters, digits and hyphens, e.g. derm or crop-disease",
        )
    return name


def module_name(name: str) -> str:
    """The package of plugin ``name``: ``crop-disease`` -> ``tlcore_crop_disease``."""
    return "tlcore_" + validate_name(name).replace("-", "_")


def tlcore_requirement(version: str | None = None) -> str:
    """The tlcore releases a new plugin pins: from this one's ``MAJOR.MINOR`` up to the next major
    (``tlcore>=0.1,<1``). tlcore changes the hook contract's major only with its own, so every release in the
    range speaks the plugin's contract."""
    match = re.match(r"(\d+)\.(\d+)", version or tlcore.__version__)
    if match is None:
        return "tlcore"
    major, minor = int(match[1]), int(match[2])
    return f"tlcore>={major}.{minor},<{major + 1}"


def render(name: str) -> dict[str, str]:
    """The skeleton's files (path relative to ``tlcore-NAME/`` -> text)."""
    from tlcore.hookspecs import HOOKS_VERSION

    module = module_name(name)
    tokens = {
        "__DIST__": f"tlcore-{name}",
        "__MODULE__": module,
        "__NAME__": name,
        "__HOOKS_VERSION__": HOOKS_VERSION,
        "__TLCORE_REQUIREMENT__": tlcore_requirement(),
    }

    def fill(template: str) -> str:
        for token, value in tokens.items():
            template = template.replace(token, value)
        return template

    return {
        "pyproject.toml": fill(PYPROJECT),
        "README.md": fill(README),
        f"{module}/__init__.py": fill(PACKAGE),
        "tests/test_plugin.py": fill(TESTS),
    }


def new_plugin(name: str, directory: Path | str = ".") -> Path:
    """Write ``directory/tlcore-NAME/``; refuse an invalid name or an existing folder. Returns the folder."""
    files = render(name)
    target = Path(directory) / f"tlcore-{name}"
    if target.exists():
        raise TlcoreError(f"{target} already exists", "choose another --dir or NAME, or remove the folder")
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
