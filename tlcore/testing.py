"""Contract checks for tlcore plugins: is what my plugin registers usable by the engine?

One call checks a whole plugin::

    import tlcore_derm
    from tlcore.testing import check_plugin

    def test_contract() -> None:
        check_plugin(tlcore_derm, name="derm")

:func:`check_plugin` builds a fresh :class:`~tlcore.plugins.PluginHost` (the core's defaults,
no installed entry points), adds the plugin and checks every object it registers:

* the plugin loads without a failure and implements at least one hook;
* it declares the hook contract it was built for (``TLCORE_HOOKS = "1.0"`` in its module), and this
  tlcore speaks it (same major as :data:`tlcore.HOOKS_VERSION`, minor no newer);
* every dataset adapter has a name, a description and ``load``; an adapter whose ``detect``
  accepts a generated ``<split>/<class>/<image>`` folder of tiny PNGs (or that has no
  ``detect``) must load it into a :class:`~tlcore.specs.LabeledDataset` whose train records
  exist and decode through ``dataset.reader`` to ``HxWxC`` uint8 (adapters for other layouts
  get their own sample through ``adapter_samples``);
* every augmentation, built for a 64x64 input with ``train=True`` and ``train=False``, maps a
  random 80x100x3 uint8 image to a 64x64xC uint8 array;
* every head builds for 16 features and 3 outputs; a torch head maps a (2, 16) tensor to
  (2, 3), a scikit-learn head fits and predicts probabilities on random data;
* every backbone names a timm architecture (or a Hugging Face hub id) and a valid weights source; ``resolve_backbone``
  returns ``None`` for names the plugin does not own;
* every preset resolves (its ``extends`` chain included) and validates as a run configuration,
  and the adapter, augmentation, head and backbone it names exist;
* every catalogue entry names a registered adapter;
* every logger builds a :class:`~tlcore.specs.RunLogger` for a default run configuration and, unless
  ``run_loggers=False`` (a logger that needs a server), goes through a sample run's calls (``start``,
  ``log_epoch``, ``log_report``, ``log_artifacts``, ``close``) without raising;
* every name the plugin registers is namespaced ``<prefix>/<name>`` (prefix: the plugin name).

All problems are collected and raised together as one :class:`AssertionError`. The single checks
(:func:`check_adapter`, :func:`check_augmentation`, ...) are plain functions too.

Installed with tlcore, this module is also a pytest plugin: the fixture ``tlcore_plugin_check``
is :func:`check_plugin` with sample files under the test's ``tmp_path``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlcore.catalog import CatalogEntry
    from tlcore.config import RunConfig
    from tlcore.plugins import PluginHost
    from tlcore.specs import Augmentation, Backbone, DatasetAdapter, Head, LabeledDataset, Logger, Perturbation

__all__ = [
    "SAMPLE_CLASSES",
    "SAMPLE_COUNTS",
    "check_adapter",
    "check_augmentation",
    "check_backbone",
    "check_catalog_entry",
    "check_dataset",
    "check_head",
    "check_hooks_version",
    "check_loaded",
    "check_logger",
    "check_names",
    "check_plugin",
    "check_preset",
    "check_resolve_backbone",
    "plugin_name_of",
    "write_sample_folder",
]

#: Classes and images per split of the folder :func:`write_sample_folder` generates.
SAMPLE_CLASSES: tuple[str, ...] = ("alpha", "beta", "gamma")
SAMPLE_COUNTS: Mapping[str, int] = {"train": 4, "val": 2, "test": 2}
#: A backbone name no plugin should claim: ``resolve_backbone`` must return ``None`` for it.
FOREIGN_BACKBONE = "tlcore-testing-no-such-backbone"

_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*(/[A-Za-z0-9][A-Za-z0-9._+-]*)*")


# -- helpers -------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {Path(frames[0].filename).name}:{frames[0].lineno}" if frames else ""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}{where}"


@contextmanager
def _calling(what: str) -> Iterator[None]:
    """Turn an exception raised by plugin code into an AssertionError that says what was called."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{what} raised {_short(exc)}") from exc


def _require(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _text_field(obj: object, field: str, what: str) -> None:
    value = getattr(obj, field, None)
    _require(isinstance(value, str) and value.strip(), f"{what}: {field} must be a non-empty string, got {value!r}")


def write_sample_folder(
    root: Path | str,
    classes: Sequence[str] = SAMPLE_CLASSES,
    counts: Mapping[str, int] = SAMPLE_COUNTS,
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
) -> Path:
    """Write ``root/<split>/<class>/<class>_<i>.png``: tiny random RGB PNGs (``size`` is height, width)."""
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            base = rng.integers(40, 216, 3)
            for i in range(n):
                noise = rng.integers(-30, 31, (*size, 3))
                pixels = np.clip(base[None, None, :] + noise + 5 * k, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root


def plugin_name_of(plugin: ModuleType | object) -> str:
    """The entry-point name of an installed plugin module (``tlcore_medical`` -> ``medical``).

    A module that is not installed is named after its module (``tlcore_derm`` -> ``derm``);
    other objects need an explicit name.
    """
    if not isinstance(plugin, ModuleType):
        raise ValueError(f"cannot tell the name of plugin {plugin!r}: pass name='...'")
    for ep in importlib.metadata.entry_points(group="tlcore"):
        if ep.value == plugin.__name__:
            return ep.name
    module = plugin.__name__.rsplit(".", 1)[-1]
    return module.removeprefix("tlcore_").replace("_", "-")


# -- single checks ---------------------------------------------------------------------------------


def check_loaded(host: PluginHost, name: str) -> None:
    """The plugin ``name`` is in ``host``, loaded, implements a hook, and none of its hooks failed."""
    for _ in host.registries().values():
        pass  # building every registry calls every hook, so a hook that raises is recorded
    info = next((i for i in host.plugins() if i.name == name), None)
    _require(info is not None, f"plugin {name!r} is not in the host: {[i.name for i in host.plugins()]}")
    assert info is not None
    _require(info.status == "loaded", f"plugin {name!r} {info.status}: {info.error}")
    _require(
        info.hooks,
        f"plugin {name!r} implements no tlcore hook (decorate functions with @tlcore.hookimpl; "
        "names as in tlcore.hookspecs)",
    )


def check_hooks_version(plugin: ModuleType | object, name: str = "plugin") -> None:
    """The plugin declares the hook contract it was built for (``TLCORE_HOOKS``), and this tlcore speaks it."""
    from tlcore.hookspecs import HOOKS_VERSION
    from tlcore.plugins import HOOKS_ATTRIBUTE, contract_problem

    declared = getattr(plugin, HOOKS_ATTRIBUTE, None)
    where = f"module {plugin.__name__}" if isinstance(plugin, ModuleType) else "the plugin object"
    _require(
        declared is not None,
        f"plugin {name!r} declares no hook contract: add {HOOKS_ATTRIBUTE} = {HOOKS_VERSION!r} to {where} "
        "(the contract of the tlcore it is built for, tlcore.HOOKS_VERSION)",
    )
    problem = contract_problem(declared)
    _require(problem is None, f"plugin {name!r}: {problem}")


def check_dataset(dataset: LabeledDataset, what: str = "dataset", decode: int = 64) -> None:
    """A loaded dataset: classes, a non-empty train split, files that exist and decode to HxWxC uint8.

    ``decode`` caps how many records per split are decoded through ``dataset.reader``.
    """
    import numpy as np

    from tlcore.specs import LabeledDataset, Record, source_file

    _require(isinstance(dataset, LabeledDataset), f"{what}: load() must return a LabeledDataset, got {dataset!r}")
    classes = dataset.classes
    _require(
        isinstance(classes, list) and classes and all(isinstance(c, str) and c for c in classes),
        f"{what}: classes must be a non-empty list of names, got {classes!r}",
    )
    _require(len(set(classes)) == len(classes), f"{what}: classes are not unique: {classes!r}")
    _require(dataset.splits.get("train"), f"{what}: no records in a 'train' split (splits: {list(dataset.splits)})")
    unknown = set(dataset.splits) - {"train", "val", "test"}
    _require(not unknown, f"{what}: splits must be named train, val and test, got {sorted(unknown)}")
    _require(callable(dataset.reader), f"{what}: reader must be callable, got {dataset.reader!r}")
    for split, records in dataset.splits.items():
        for record in records:
            _require(isinstance(record, Record), f"{what}: {split} holds {record!r}, not a Record")
            _require(Path(source_file(record.path)).is_file(), f"{what}: {split} record {record.path!r} is not a file")
            if dataset.task == "classification":
                _require(
                    isinstance(record.target, int) and 0 <= record.target < len(classes),
                    f"{what}: {split} record {record.path!r} has target {record.target!r}, "
                    f"expected a class index 0..{len(classes) - 1}",
                )
        for record in records[:decode]:
            with _calling(f"{what}: reader({record.path!r})"):
                image = dataset.reader(record.path)
            _require(
                isinstance(image, np.ndarray) and image.ndim == 3 and image.dtype == np.uint8,
                f"{what}: reader({record.path!r}) must return an HxWxC uint8 array, got "
                + (f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else repr(type(image))),
            )
            _require(
                image.shape[2] == dataset.channels,
                f"{what}: reader({record.path!r}) returned {image.shape[2]} channels, dataset.channels is "
                f"{dataset.channels}",
            )


def check_adapter(
    adapter: DatasetAdapter,
    sample: Path | str | None = None,
    options: Mapping[str, Any] | None = None,
) -> LabeledDataset | None:
    """Check an adapter's fields; load ``sample`` unless its ``detect`` rejects it.

    Returns the loaded dataset, or ``None`` when ``sample`` is ``None`` or ``detect`` said no.
    """
    from tlcore.specs import DatasetAdapter

    what = f"dataset adapter {getattr(adapter, 'name', adapter)!r}"
    _require(isinstance(adapter, DatasetAdapter), f"{what} is not a tlcore.specs.DatasetAdapter")
    _text_field(adapter, "name", what)
    _text_field(adapter, "description", what)
    _require(callable(adapter.load), f"{what}: load must be callable")
    _require(adapter.detect is None or callable(adapter.detect), f"{what}: detect must be None or callable")
    _require(
        isinstance(adapter.priority, int) and not isinstance(adapter.priority, bool),
        f"{what}: priority must be an int, got {adapter.priority!r}",
    )
    if sample is None:
        return None
    root = Path(sample)
    if adapter.detect is not None:
        with _calling(f"{what}: detect({root})"):
            accepted = adapter.detect(root)
        _require(isinstance(accepted, bool), f"{what}: detect() must return True or False, got {accepted!r}")
        if not accepted:
            return None
    with _calling(f"{what}: load({root})"):
        dataset = adapter.load(root, dict(options or {}))
    check_dataset(dataset, f"{what} on {root}")
    return dataset


def check_augmentation(
    augmentation: Augmentation,
    image_size: tuple[int, int] = (64, 64),
    input_shape: tuple[int, int, int] = (80, 100, 3),
    repeats: int = 3,
    seed: int = 0,
) -> None:
    """Built for train and eval, the pipeline maps a random uint8 image to ``image_size`` x C uint8, and the
    eval half is the eval view every command uses (``tlcore.data.transforms.eval_transform``)."""
    import numpy as np

    from tlcore.specs import Augmentation, AugmentationContext

    what = f"augmentation {getattr(augmentation, 'name', augmentation)!r}"
    _require(isinstance(augmentation, Augmentation), f"{what} is not a tlcore.specs.Augmentation")
    _text_field(augmentation, "name", what)
    _text_field(augmentation, "description", what)
    _require(callable(augmentation.build), f"{what}: build must be callable")
    rng = np.random.default_rng(seed)
    channels = input_shape[2]
    for train in (True, False):
        ctx = AugmentationContext(image_size=image_size, train=train, channels=channels)
        with _calling(f"{what}: build(train={train})"):
            transform = augmentation.build(ctx)
        _require(callable(transform), f"{what}: build(train={train}) returned {transform!r}, not a transform")
        for _ in range(repeats if train else 1):
            image = rng.integers(0, 256, input_shape, dtype=np.uint8)
            with _calling(f"{what} (train={train}) on a {input_shape} uint8 image"):
                result = transform(image=image)
            out = result.get("image") if isinstance(result, Mapping) else None
            expected = (*image_size, channels)
            _require(
                isinstance(out, np.ndarray) and out.shape == expected and out.dtype == np.uint8,
                f"{what} (train={train}): a {input_shape} uint8 image became "
                + (f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else repr(type(out)))
                + f", expected uint8 {expected} (resize/crop to ctx.image_size; no normalisation, no tensors)",
            )
        if not train:
            from tlcore.data.transforms import eval_half_difference

            why = eval_half_difference(transform, ctx)
            _require(
                why is None,
                f"{what} (train=False) is not the eval view every command scores through: {why}; "
                "return tlcore.data.transforms.eval_transform(ctx) when ctx.train is False",
            )


def check_perturbation(
    perturbation: Perturbation, shapes: Sequence[tuple[int, int, int]] = ((48, 40, 3), (32, 32, 1)), seed: int = 0
) -> None:
    """On float32 images in ``[0, 1]`` (3 and 1 channels) the change keeps shape and range, is deterministic,
    and changes something."""
    import numpy as np

    from tlcore.specs import Perturbation

    what = f"perturbation {getattr(perturbation, 'name', perturbation)!r}"
    _require(isinstance(perturbation, Perturbation), f"{what} is not a tlcore.specs.Perturbation")
    _text_field(perturbation, "name", what)
    _text_field(perturbation, "description", what)
    _require(callable(perturbation.apply), f"{what}: apply must be callable")
    rng = np.random.default_rng(seed)
    for shape in shapes:
        image = rng.uniform(0.2, 0.8, shape).astype(np.float32)
        with _calling(f"{what} on a {shape} float32 image"):
            first = np.asarray(perturbation.apply(image.copy()))
            second = np.asarray(perturbation.apply(image.copy()))
        _require(first.shape == image.shape, f"{what}: a {shape} image became {first.shape}; keep the shape")
        _require(bool(np.all(np.isfinite(first))), f"{what}: returned NaN or infinite values")
        _require(
            np.array_equal(first, second),
            f"{what}: two calls on the same image differ; seed any noise "
            "from the image (tlcore.data.perturbations.image_rng)",
        )
        _require(not np.allclose(first, image), f"{what}: left a {shape} image unchanged")


def check_head(head: Head, in_features: int = 16, num_outputs: int = 3, seed: int = 0) -> None:
    """The head builds; torch heads map (2, in_features) to (2, num_outputs); sklearn heads fit and predict."""
    import numpy as np

    from tlcore.specs import Head, HeadContext

    what = f"head {getattr(head, 'name', head)!r}"
    _require(isinstance(head, Head), f"{what} is not a tlcore.specs.Head")
    _text_field(head, "name", what)
    _text_field(head, "description", what)
    _require(head.kind in ("torch", "sklearn"), f"{what}: kind must be 'torch' or 'sklearn', got {head.kind!r}")
    _require(callable(head.build), f"{what}: build must be callable")
    # The engine always passes the run's dropout; heads ignore parameters they do not use.
    ctx = HeadContext(in_features=in_features, num_outputs=num_outputs, params={"dropout": 0.2})
    with _calling(f"{what}: build(in_features={in_features}, num_outputs={num_outputs})"):
        model = head.build(ctx)
    rng = np.random.default_rng(seed)
    if head.kind == "torch":
        import torch

        _require(isinstance(model, torch.nn.Module), f"{what}: a torch head must build an nn.Module, got {model!r}")
        model.eval()
        batch = torch.from_numpy(rng.standard_normal((2, in_features)).astype(np.float32))
        with torch.no_grad(), _calling(f"{what}: forward on a (2, {in_features}) tensor"):
            y = model(batch)
        _require(
            isinstance(y, torch.Tensor) and tuple(y.shape) == (2, num_outputs),
            f"{what}: a (2, {in_features}) input gave "
            + (f"shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else repr(type(y)))
            + f", expected (2, {num_outputs}) logits",
        )
        _require(bool(torch.isfinite(y).all()), f"{what}: logits are not finite")
        return
    _require(hasattr(model, "fit"), f"{what}: a scikit-learn head must build an estimator with fit(), got {model!r}")
    x = rng.standard_normal((10 * num_outputs, in_features))
    y = np.arange(10 * num_outputs) % num_outputs
    with _calling(f"{what}: fit on ({len(x)}, {in_features}) features"):
        model.fit(x, y)
    if hasattr(model, "predict_proba"):
        with _calling(f"{what}: predict_proba"):
            proba = np.asarray(model.predict_proba(x[:5]))
        _require(proba.shape == (5, num_outputs), f"{what}: predict_proba gave {proba.shape}, expected (5, 3)")
        _require(np.allclose(proba.sum(axis=1), 1.0, atol=1e-4), f"{what}: predict_proba rows do not sum to 1")
    else:
        _require(hasattr(model, "decision_function"), f"{what}: the estimator needs predict_proba or decision_function")
        with _calling(f"{what}: decision_function"):
            scores = np.asarray(model.decision_function(x[:5]))
        _require(scores.shape == (5, num_outputs), f"{what}: decision_function gave {scores.shape}, expected (5, 3)")


def check_backbone(backbone: Backbone) -> None:
    """A timm architecture timm knows, a valid weights source, and a weights file where one is declared."""
    from tlcore.specs import Backbone

    what = f"backbone {getattr(backbone, 'name', backbone)!r}"
    _require(isinstance(backbone, Backbone), f"{what} is not a tlcore.specs.Backbone")
    _text_field(backbone, "name", what)
    _text_field(backbone, "description", what)
    _text_field(backbone, "timm_name", what)
    _require(
        backbone.default_weights in ("hub", "file", "none"),
        f"{what}: default_weights must be hub, file or none, got {backbone.default_weights!r}",
    )
    import timm

    from tlcore.models.hub_models import hub_model_id, is_hub_name

    if is_hub_name(backbone.timm_name):  # hf-hub:ORG/NAME: the id here, its config.json when it is built
        with _calling(f"{what}: timm_name"):
            hub_model_id(backbone.timm_name)
    else:
        _require(timm.is_model(backbone.timm_name), f"{what}: timm has no architecture {backbone.timm_name!r}")
    if backbone.default_weights == "file":
        _require(callable(backbone.weights_file), f"{what}: default_weights='file' needs a weights_file callable")
        assert backbone.weights_file is not None
        with _calling(f"{what}: weights_file()"):
            path = backbone.weights_file()
        _require(Path(path).exists(), f"{what}: weights_file() returned {path}, which does not exist")


def check_resolve_backbone(host: PluginHost, name: str, resolvable: Sequence[str] = ()) -> None:
    """The plugin's ``resolve_backbone`` returns None for a foreign name and a Backbone for ``resolvable``."""
    from tlcore.specs import Backbone

    impls = [i for i in host.pm.hook.resolve_backbone.get_hookimpls() if host.pm.get_name(i.plugin) == name]
    _require(impls or not resolvable, f"plugin {name!r} has no resolve_backbone, but {list(resolvable)} should resolve")
    for impl in impls:
        what = f"plugin {name!r}: resolve_backbone"
        with _calling(f"{what}({FOREIGN_BACKBONE!r})"):
            foreign = impl.function(name=FOREIGN_BACKBONE)
        _require(
            foreign is None,
            f"{what}({FOREIGN_BACKBONE!r}) returned {foreign!r}: return None for names the plugin does not own, "
            "or it hides every other plugin's backbones",
        )
        for wanted in resolvable:
            with _calling(f"{what}({wanted!r})"):
                found = impl.function(name=wanted)
            if not isinstance(found, Backbone):
                raise AssertionError(f"{what}({wanted!r}) returned {found!r}, not a Backbone")
            check_backbone(found)


def check_preset(host: PluginHost, name: str) -> RunConfig:
    """The preset resolves through ``extends``, validates, and names things that exist; returns the config."""
    from tlcore.config import build_config, preset_settings
    from tlcore.errors import TlcoreError

    what = f"preset {name!r}"
    preset = host.presets.get(name)
    _text_field(preset, "description", what)
    try:
        settings = preset_settings(host.presets, name)
        config = build_config(settings, {}, f"preset {name}")
    except TlcoreError as exc:
        raise AssertionError(f"{what} does not resolve: {exc}") from exc
    _require(config.augmentation in host.augmentations, f"{what}: unknown augmentation {config.augmentation!r}")
    unknown = [n for n in config.stress_perturbations if n not in host.perturbations]
    _require(not unknown, f"{what}: stress_perturbations names unregistered changes {unknown}")
    _require(config.head in host.heads, f"{what}: unknown head {config.head!r}")
    _require(config.adapter == "auto" or config.adapter in host.adapters, f"{what}: unknown adapter {config.adapter!r}")
    try:
        host.backbone(config.backbone)
    except TlcoreError as exc:
        raise AssertionError(f"{what}: {exc}") from exc
    if config.technique == "fine-tuning":
        _require(
            host.heads.get(config.head).kind == "torch",
            f"{what}: fine-tuning needs a torch head, {config.head!r} is a scikit-learn head",
        )
    return config


def check_catalog_entry(host: PluginHost, entry: CatalogEntry) -> None:
    """A catalogue entry names a registered dataset adapter."""
    what = f"catalogue entry {entry.name!r}"
    _require(entry.adapter in host.adapters, f"{what}: unknown adapter {entry.adapter!r} (tl list adapters)")


def check_logger(logger: Logger, workdir: Path | str | None = None, run: bool = True) -> None:
    """The logger builds a RunLogger for a default run configuration; with ``run``, that logger goes through a sample
    run's calls in order (``start``, two ``log_epoch``, ``log_report``, ``log_artifacts``, ``close("FINISHED")``) in a
    run directory under ``workdir`` (default: a temporary folder) without raising."""
    import json

    from tlcore.config import RunConfig
    from tlcore.specs import Logger, LoggerContext, RunLogger

    what = f"logger {getattr(logger, 'name', logger)!r}"
    _require(isinstance(logger, Logger), f"{what} is not a tlcore.specs.Logger")
    _text_field(logger, "name", what)
    _text_field(logger, "description", what)
    _require(callable(logger.build), f"{what}: build must be callable")
    with tempfile.TemporaryDirectory(prefix="tlcore-check-logger-") as tmp:
        run_dir = Path(workdir if workdir is not None else tmp) / re.sub(r"[^\w.-]", "_", f"run-{logger.name}")
        config = RunConfig.model_validate({"loggers": [logger.name]}).model_dump()
        with _calling(f"{what}: build(context)"):
            built = logger.build(LoggerContext(config=config, run_dir=run_dir))
        _require(isinstance(built, RunLogger), f"{what}: build() returned {built!r}, not a tlcore.specs.RunLogger")
        if not run:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        report = {"val": {"n": 6, "accuracy": 0.5}, "test": {"n": 6, "accuracy": 0.5}, "config": config}
        (run_dir / "report.json").write_text(json.dumps(report))
        (run_dir / "metrics.csv").write_text("epoch,train_loss,val_accuracy\n1,1.0,0.4\n2,0.8,0.5\n")
        meta = {"run_id": "0123456789ab", "run_dir": str(run_dir), "preset": "fine-tuning", "data": "sample",
                "adapter": "image-folder", "technique": "fine-tuning", "task": "classification",
                "classes": ["alpha", "beta"], "resumed": False}  # fmt: skip
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("start", (config, meta)),
            ("log_epoch", (1, {"train_loss": 1.0, "val_accuracy": 0.4})),
            ("log_epoch", (2, {"train_loss": 0.8, "val_accuracy": 0.5})),
            ("log_report", ({"val/accuracy": 0.5, "test/accuracy": 0.5}, report)),
            ("log_artifacts", (run_dir, [run_dir / "metrics.csv", run_dir / "report.json"])),
            ("close", ("FINISHED",)),
        ]
        for method, args in calls:
            with _calling(f"{what}: {method}"):
                getattr(built, method)(*args)


def check_names(host: PluginHost, name: str, prefix: str) -> int:
    """Every name plugin ``name`` registered is ``<prefix>/<name>``; returns how many it registered."""
    bad: list[str] = []
    count = 0
    for kind, registry in host.registries().items():
        for entry in registry:
            if entry.plugin != name:
                continue
            count += 1
            rest = entry.name.removeprefix(f"{prefix}/")
            if rest == entry.name or not _NAME_PART.fullmatch(rest):
                bad.append(f"{kind} {entry.name!r}")
    _require(not bad, f"plugin {name!r}: names must look like '{prefix}/<name>': {', '.join(bad)}")
    return count


# -- the whole plugin ------------------------------------------------------------------------------


def check_plugin(
    plugin: ModuleType | object,
    name: str | None = None,
    *,
    prefix: str | None = None,
    adapter_samples: Mapping[str, Path | str] | None = None,
    adapter_options: Mapping[str, Mapping[str, Any]] | None = None,
    resolvable: Sequence[str] = (),
    workdir: Path | str | None = None,
    run_loggers: bool = True,
) -> None:
    """Check everything ``plugin`` registers; raise one AssertionError listing every problem.

    ``name``: the plugin's name (default: its entry-point name, see :func:`plugin_name_of`).
    ``prefix``: the namespace of its names (default ``name``).
    ``adapter_samples``: adapter name -> a sample path, for adapters that do not read the generated
    ``<split>/<class>/<image>`` folder (a CSV manifest, DICOM); ``adapter_options`` per adapter.
    ``resolvable``: backbone names the plugin's ``resolve_backbone`` must resolve.
    ``workdir``: where the sample folder is written (default: a temporary folder).
    ``run_loggers``: run each logger through a sample run's calls (False: only build it, for a logger that needs a
    server the test cannot reach).
    """
    from tlcore.plugins import PluginHost

    name = name or plugin_name_of(plugin)
    prefix = prefix or name
    host = PluginHost(load_entrypoints=False)
    added = host.add_plugin(plugin, name=name)
    info = next((i for i in host.plugins() if i.name == name), None)
    if not added:
        detail = info.error if info is not None else "a plugin of that name is already loaded"
        raise AssertionError(f"plugin {name!r} did not load: {detail}")
    check_loaded(host, name)

    problems: list[str] = []

    def attempt(check: Callable[[], object]) -> None:
        try:
            check()
        except AssertionError as exc:
            problems.append(str(exc))

    attempt(functools.partial(check_hooks_version, plugin, name))
    samples = dict(adapter_samples or {})
    options = dict(adapter_options or {})
    mine = {kind: [e for e in registry if e.plugin == name] for kind, registry in host.registries().items()}

    with tempfile.TemporaryDirectory(prefix="tlcore-check-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        folder = write_sample_folder(base / "sample-image-folder")
        unknown = sorted(set(samples) - {e.name for e in mine["adapters"]})
        if unknown:
            problems.append(f"adapter_samples names adapters plugin {name!r} does not register: {unknown}")
        for entry in mine["adapters"]:
            adapter, sample = entry.item, samples.get(entry.name, folder)

            def adapter_check(adapter: DatasetAdapter = adapter, sample: Path | str = sample) -> None:
                dataset = check_adapter(adapter, sample, options.get(adapter.name))
                if dataset is None and adapter.name in samples:
                    raise AssertionError(f"dataset adapter {adapter.name!r}: detect() rejects its sample {sample}")

            attempt(adapter_check)
        for entry in mine["augmentations"]:
            attempt(functools.partial(check_augmentation, entry.item))
        for entry in mine["heads"]:
            attempt(functools.partial(check_head, entry.item))
        for entry in mine["perturbations"]:
            attempt(functools.partial(check_perturbation, entry.item))
        for entry in mine["backbones"]:
            attempt(functools.partial(check_backbone, entry.item))
        attempt(functools.partial(check_resolve_backbone, host, name, resolvable))
        for entry in mine["presets"]:
            attempt(functools.partial(check_preset, host, entry.name))
        for entry in mine["datasets"]:
            attempt(functools.partial(check_catalog_entry, host, entry.item))
        for entry in mine["loggers"]:
            attempt(functools.partial(check_logger, entry.item, base / "loggers", run_loggers))
        attempt(functools.partial(check_names, host, name, prefix))

    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise AssertionError(f"plugin {name!r} breaks the tlcore plugin contract ({len(problems)} problems):\n{lines}")


# -- pytest plugin ---------------------------------------------------------------------------------

try:
    import pytest as _pytest
except ImportError:  # pragma: no cover - the plain functions work without pytest
    _pytest = None  # type: ignore[assignment]

if _pytest is not None:

    @_pytest.fixture
    def tlcore_plugin_check(tmp_path: Path) -> Callable[..., None]:
        """:func:`check_plugin`, writing its sample files under the test's ``tmp_path``.

        ``def test_contract(tlcore_plugin_check): tlcore_plugin_check(tlcore_derm, name="derm")``
        """
        return functools.partial(check_plugin, workdir=tmp_path)

    @_pytest.fixture(scope="session")
    def tlcore_isolated_env(tmp_path_factory: _pytest.TempPathFactory) -> Iterator[Path]:
        """Caches and catalogue downloads under a session temp folder, never ~/.cache, and no hub access.

        Yields the cache folder. A plugin's conftest makes it apply to every test with
        ``@pytest.fixture(scope="session", autouse=True)`` around it.
        """
        cache = tmp_path_factory.mktemp("tlcore-cache")
        mp = _pytest.MonkeyPatch()
        mp.setenv("TLCORE_CACHE", str(cache))
        mp.setenv("TLCORE_DATA", str(tmp_path_factory.mktemp("tlcore-data")))
        mp.delenv("TLCORE_CATALOG", raising=False)
        mp.setenv("HF_HUB_OFFLINE", "1")
        try:  # huggingface_hub reads the variable once, at import
            import huggingface_hub.constants as hf_constants

            mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        except ImportError:  # pragma: no cover - huggingface_hub comes with timm
            pass
        yield cache
        mp.undo()
