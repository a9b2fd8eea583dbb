"""Plugin loading that survives bad plugins, and the typed facade the rest of tlcore uses.

Entry points in the group ``tlcore`` are loaded one by one: a plugin that fails to import,
fails hook validation, implements a hook that does not exist, or raises inside a hook is
recorded with its error and skipped, and every other plugin still loads.

A plugin declares the hook contract it was built for as ``TLCORE_HOOKS = "MAJOR.MINOR"`` on the object its
entry point names (normally its module). It loads when the major is this tlcore's
(:data:`tlcore.HOOKS_VERSION`) and the minor is no newer; otherwise it is not registered, and ``tl plugins``
shows it as ``incompatible`` with the reason and the fix. A plugin that declares nothing loads, with a note.

Environment switches:

* ``TLCORE_DISABLE_PLUGINS=a,b`` skips the named plugins.
* ``TLCORE_LOAD_PLUGINS=a,b`` loads only the named entry-point plugins (empty: none).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, TypeVar, cast

import pluggy

import tlcore
from tlcore import hookspecs
from tlcore.errors import DuplicateNameError, PluginError, TlcoreError, UnknownNameError
from tlcore.registry import Registry
from tlcore.specs import Augmentation, Backbone, DatasetAdapter, Head, Logger, Perturbation, Preset

ENTRY_POINT_GROUP = "tlcore"
#: The attribute a plugin declares its hook contract with: ``TLCORE_HOOKS = "1.0"`` in its module.
HOOKS_ATTRIBUTE = "TLCORE_HOOKS"
_CONTRACT_VERSION = re.compile(r"(\d+)\.(\d+)")
#: The core's own plugins, registered first and in this order. The host loads them by name, as it loads
#: entry points: they build on tlcore.data and tlcore.models, which use the host, so it does not import them.
DEFAULT_PLUGINS = tuple(
    f"tlcore.default_plugins.{module}"
    for module in ("datasets", "augmentations", "backbones", "heads", "presets", "perturbations", "loggers")
)
T = TypeVar("T")


@dataclass
class PluginInfo:
    """What ``tl plugins`` shows for one plugin."""

    name: str
    version: str | None
    distribution: str | None
    hooks: list[str] = field(default_factory=list)
    status: str = "loaded"  # loaded | failed | incompatible | disabled
    error: str | None = None
    default: bool = False
    #: The hook contract the plugin declares (``TLCORE_HOOKS``); the core's for its default plugins.
    hooks_version: str | None = None
    #: Something to know about a loaded plugin (it declares no hook contract).
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "hooks": self.hooks,
            "status": self.status,
            "error": self.error,
            "default": self.default,
            "hooks_version": self.hooks_version,
            "note": self.note,
        }


def _csv_env(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def contract_problem(declared: object, core: str | None = None) -> str | None:
    """Why a plugin built for hook contract ``declared`` cannot load into a tlcore that speaks ``core`` (default:
    :data:`tlcore.HOOKS_VERSION`), with the fix; ``None`` when it can: same major, minor no newer than the core's."""
    core = core or hookspecs.HOOKS_VERSION
    core_major, core_minor = (int(part) for part in core.split("."))
    match = _CONTRACT_VERSION.fullmatch(declared.strip()) if isinstance(declared, str) else None
    if match is None:
        expected = "a hook contract version" if isinstance(declared, str) else "a string"
        return f"declares {HOOKS_ATTRIBUTE} = {declared!r}, not {expected} like {core!r}: fix the plugin's declaration"
    major, minor = int(match[1]), int(match[2])
    built = f"built for hook contract {major}.{minor}, this tlcore ({tlcore.__version__}) speaks {core}"
    if major > core_major:
        return f"{built}: upgrade tlcore, or install a plugin release for hook contract {core_major}.x"
    if major < core_major:
        return f"{built}: install a plugin release for hook contract {core_major}.x, or a tlcore for {major}.x"
    if minor > core_minor:
        return f"{built}: upgrade tlcore, or install a plugin release for hook contract {core} or older"
    return None


def _describe(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {os.path.basename(last[0].filename)}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class PluginHost:
    """Owns the pluggy manager and builds the registries (a typed facade over ``pm.hook``)."""

    def __init__(self, load_entrypoints: bool = True, default_plugins: bool = True) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        if default_plugins:
            for name in DEFAULT_PLUGINS:
                self.add_plugin(import_module(name), name=name, version=tlcore.__version__, default=True)
        if load_entrypoints:
            self.load_entrypoints()

    # -- loading ---------------------------------------------------------------------------

    def add_plugin(
        self,
        plugin: ModuleType | object,
        name: str,
        version: str | None = None,
        distribution: str | None = None,
        default: bool = False,
    ) -> bool:
        """Register one plugin object; on failure record the error and return False."""
        if name in self._infos:
            return False  # a name already taken (the same entry point seen twice): keep the first
        info = PluginInfo(name=name, version=version, distribution=distribution, default=default)
        self._infos[name] = info
        if default:
            info.hooks_version = hookspecs.HOOKS_VERSION  # the core's own plugins speak its contract
        elif (declared := getattr(plugin, HOOKS_ATTRIBUTE, None)) is None:
            info.note = (
                f"declares no hook contract ({HOOKS_ATTRIBUTE}), so it was loaded unchecked; "
                f"this tlcore speaks {hookspecs.HOOKS_VERSION}"
            )
        else:
            info.hooks_version = str(declared)
            problem = contract_problem(declared)
            if problem is not None:  # not registered: none of its hooks is ever called
                info.status, info.error = "incompatible", problem
                return False
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # PluginValidationError, ValueError on duplicates
            info.status, info.error = "failed", _describe(exc)
            return False
        try:
            # An implementation of a hook that does not exist (a typo) stays pending.
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            info.status, info.error = "failed", str(exc)
            return False
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        return True

    def load_entrypoints(self) -> None:
        disabled = _csv_env("TLCORE_DISABLE_PLUGINS") or set()
        allowed = _csv_env("TLCORE_LOAD_PLUGINS")
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist_name, dist_version = _dist_of(ep)
            if ep.name in disabled or (allowed is not None and ep.name not in allowed):
                self._infos[ep.name] = PluginInfo(
                    name=ep.name, version=dist_version, distribution=dist_name, status="disabled"
                )
                continue
            if ep.name in self._infos:
                continue  # the same entry point seen twice (e.g. editable + site install)
            try:
                module = ep.load()
            except Exception as exc:
                self._infos[ep.name] = PluginInfo(
                    name=ep.name,
                    version=dist_version,
                    distribution=dist_name,
                    status="failed",
                    error=f"could not import {ep.value}: {_describe(exc)}",
                )
                continue
            self.add_plugin(module, name=ep.name, version=dist_version, distribution=dist_name)

    # -- introspection ---------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        return sorted(self._infos.values(), key=lambda i: (not i.default, i.name))

    def failures(self) -> list[PluginInfo]:
        return [i for i in self.plugins() if i.status == "failed"]

    def incompatible(self) -> list[PluginInfo]:
        """Plugins built for a hook contract this tlcore does not speak: not registered."""
        return [i for i in self.plugins() if i.status == "incompatible"]

    def _fail(self, plugin_name: str, message: str) -> None:
        info = self._infos.get(plugin_name)
        if info is None:
            info = self._infos[plugin_name] = PluginInfo(plugin_name, None, None)
        info.status = "failed"
        info.error = message if info.error is None else f"{info.error}; {message}"

    # -- registries --------------------------------------------------------------------------

    def _collect(self, hook_name: str, kind: str, cls: type[T]) -> Registry[T]:
        """Call one registrar hook plugin by plugin, so one broken plugin cannot hide the others."""
        registry: Registry[T] = Registry(kind)
        caller = getattr(self.pm.hook, hook_name)
        # pluggy calls implementations last-registered first; registries follow load order instead,
        # so on a name clash the plugin loaded first (the core's defaults) keeps the name.
        order = {name: i for i, name in enumerate(self._infos)}
        impls = sorted(caller.get_hookimpls(), key=lambda im: order.get(self.pm.get_name(im.plugin) or "", len(order)))
        for impl in impls:
            plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            if self._infos.get(plugin_name, PluginInfo(plugin_name, None, None)).status == "failed":
                continue
            staged: list[T] = []

            def register(item: T, _staged: list[T] = staged) -> None:
                if not isinstance(item, cls):
                    raise TypeError(f"{hook_name} expects {cls.__name__} objects, got {type(item).__name__}")
                _staged.append(item)

            try:
                impl.function(register=register)
                # All or nothing: check every staged name before adding any.
                trial: Registry[T] = Registry(kind)
                for entry in registry:
                    trial.add(entry.name, entry.item, entry.plugin)
                for item in staged:
                    trial.add(cast(Any, item).name, item, plugin_name)
                registry = trial
            except TlcoreError as exc:
                self._fail(plugin_name, f"{hook_name}: {exc}")
            except Exception as exc:
                self._fail(plugin_name, f"{hook_name} raised {_describe(exc)}")
        # A name in the namespace of a plugin that was not loaded for its hook contract gets a warning on lookup.
        registry.skipped = {i.name: str(i.error) for i in self.incompatible()}
        return registry

    @cached_property
    def adapters(self) -> Registry[DatasetAdapter]:
        return self._collect("register_dataset_adapters", "dataset adapter", DatasetAdapter)

    @cached_property
    def augmentations(self) -> Registry[Augmentation]:
        return self._collect("register_augmentations", "augmentation", Augmentation)

    @cached_property
    def perturbations(self) -> Registry[Perturbation]:
        return self._collect("register_perturbations", "perturbation", Perturbation)

    @cached_property
    def backbones(self) -> Registry[Backbone]:
        return self._collect("register_backbones", "backbone", Backbone)

    @cached_property
    def heads(self) -> Registry[Head]:
        return self._collect("register_heads", "head", Head)

    @cached_property
    def presets(self) -> Registry[Preset]:
        return self._collect("register_presets", "preset", Preset)

    @cached_property
    def loggers(self) -> Registry[Logger]:
        return self._collect("register_loggers", "logger", Logger)

    @cached_property
    def catalog(self) -> Any:  # tlcore.catalog.Catalog; Any avoids an import cycle at module load
        from tlcore.catalog import Catalog, CatalogEntry

        plugin_entries = self._collect("register_catalog_entries", "dataset", CatalogEntry)
        catalog = Catalog.load()
        # A plugin that claims a name from datasets.yaml (or $TLCORE_CATALOG) fails on its own, all or
        # nothing, like a clash between two plugins; the files' entries and every other plugin stay.
        clashes: dict[str, list[str]] = {}
        for entry in plugin_entries:
            if entry.name in catalog.registry:
                clashes.setdefault(entry.plugin, []).append(entry.name)
        for plugin_name, names in clashes.items():
            clash = DuplicateNameError("dataset", names[0], catalog.registry.entry(names[0]).plugin, plugin_name)
            self._fail(plugin_name, f"register_catalog_entries: {clash}")
        for entry in plugin_entries:
            if entry.plugin not in clashes:
                catalog.registry.add(entry.name, entry.item, entry.plugin)
        return catalog

    def backbone(self, name: str) -> Backbone:
        """A registered backbone, or one a plugin resolves by name (any timm model, by default)."""
        if name in self.backbones:
            return self.backbones.get(name)
        try:
            resolved = self.pm.hook.resolve_backbone(name=name)
        except Exception as exc:
            raise TlcoreError(f"resolving backbone {name!r} failed: {_describe(exc)}") from exc
        if resolved is None:
            raise UnknownNameError("backbone", name, self.backbones.names(), "tl list backbones --all")
        return cast(Backbone, resolved)

    def registries(self) -> dict[str, Registry[Any]]:
        return {
            "datasets": self.catalog.registry,
            "adapters": self.adapters,
            "augmentations": self.augmentations,
            "backbones": self.backbones,
            "heads": self.heads,
            "presets": self.presets,
            "perturbations": self.perturbations,
            "loggers": self.loggers,
        }


def guarded(what: str, plugin: str, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` (a builder a plugin registered) whose crash becomes one line naming ``what`` and the plugin."""

    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except TlcoreError:
            raise
        except Exception as exc:
            raise PluginError(
                f"{what} from plugin {plugin!r} failed: {_describe(exc)}",
                "fix or update the plugin, or choose another; --debug shows the traceback",
            ) from exc

    return call


def _dist_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests use a fresh one each)."""
    global _HOST
    _HOST = host
