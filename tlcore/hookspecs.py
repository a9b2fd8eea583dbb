"""The plugin contract: every hook tlcore calls, with its documentation.

Hooks are registrar-style: tlcore passes a ``register`` callable and the plugin calls it
once per object it contributes. The core's own defaults are registered through these same
hooks (see :mod:`tlcore.default_plugins`).

A plugin module implements any of them with :data:`tlcore.hookimpl`::

    import tlcore
    from tlcore.specs import Preset

    @tlcore.hookimpl
    def register_presets(register):
        register(Preset(name="derm/isic", description="...", settings={...}, extends="fine-tuning"))

and declares the contract version it was built for (:data:`HOOKS_VERSION`) next to them::

    TLCORE_HOOKS = "1.0"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tlcore.catalog import CatalogEntry
    from tlcore.specs import Augmentation, Backbone, DatasetAdapter, Head, Logger, Perturbation, Preset

hookspec = pluggy.HookspecMarker("tlcore")

HOOKS_VERSION = "1.0"
"""The version of this contract, ``MAJOR.MINOR`` (also ``tlcore.HOOKS_VERSION``).

The major changes when a hook's signature or meaning changes incompatibly: a plugin built for another major is
not loaded. The minor changes when hooks are added: a plugin built for an older minor loads, one built for a
newer minor does not. A plugin declares the version it was built for as ``TLCORE_HOOKS = "1.0"`` in the module
its entry point names; one that declares nothing loads, with a note in ``tl plugins``.
"""


@hookspec
def register_dataset_adapters(register: Callable[[DatasetAdapter], None]) -> None:
    """Register dataset adapters: the loaders that turn a path into labelled records.

    Called once, when the adapter registry is first used. Call ``register(adapter)`` for
    each :class:`~tlcore.specs.DatasetAdapter`. Names must be unique across plugins; a
    plugin's names should be namespaced (``medical/dicom``).
    An adapter whose files need their own decoding (DICOM, volumes) should also give
    ``predict_inputs``, so ``tl predict`` reads new files the way training read them.
    """


@hookspec
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    """Register augmentation pipelines (albumentations) that presets and ``--set augmentation=`` name.

    Called once, when the augmentation registry is first used. Call ``register(aug)`` for
    each :class:`~tlcore.specs.Augmentation`; its ``build(context)`` returns the train
    transform for the model's input size, and for ``context.train`` False the core's eval view
    (``tlcore.data.transforms.eval_transform(context)``), which every command scores through.
    """


@hookspec
def register_perturbations(register: Callable[[Perturbation], None]) -> None:
    """Register acquisition changes that ``tl stress`` re-scores a run's images under.

    Called once, when the perturbation registry is first used. Call ``register(change)`` for each
    :class:`~tlcore.specs.Perturbation`: a deterministic change of the model's input view that another
    device, site or setting would make (an MRI bias field, a drone's motion blur). The core registers
    generic ones (blur, JPEG, exposure, framing); a domain plugin adds its modality's own.
    """


@hookspec
def register_backbones(register: Callable[[Backbone], None]) -> None:
    """Register named pretrained backbones (architecture + weight source).

    Called once, when the backbone registry is first used. These are the backbones
    ``tl list backbones`` shows; any other timm architecture can still be used by name
    through :func:`resolve_backbone`.
    """


@hookspec(firstresult=True)
def resolve_backbone(name: str) -> Backbone | None:
    """Return a :class:`~tlcore.specs.Backbone` for a name that no plugin registered, or ``None``.

    Called when a run names a backbone that is not in the registry; the first plugin that
    returns a backbone wins. The core's default plugin resolves every timm model name and Hugging Face hub
    ids (``hf-hub:ORG/NAME``, ``timm/NAME``).
    """


@hookspec
def register_heads(register: Callable[[Head], None]) -> None:
    """Register classifier heads: torch modules (linear, MLP) or scikit-learn estimators.

    Called once, when the head registry is first used. Call ``register(head)`` for each
    :class:`~tlcore.specs.Head`.
    """


@hookspec
def register_presets(register: Callable[[Preset], None]) -> None:
    """Register training presets: named recipes that ``tl train --preset NAME`` runs.

    Called once, when the preset registry is first used. A :class:`~tlcore.specs.Preset`
    may ``extend`` another (the core's ``feature-extraction`` or ``fine-tuning``).
    """


@hookspec
def register_catalog_entries(register: Callable[[CatalogEntry], None]) -> None:
    """Register dataset catalogue entries, next to those in ``datasets.yaml``.

    Called once, when the catalogue is first used. Call ``register(entry)`` with a
    :class:`~tlcore.catalog.CatalogEntry` (where the data comes from, licence, citation).
    """


@hookspec
def register_loggers(register: Callable[[Logger], None]) -> None:
    """Register experiment trackers that a run reports to when its ``loggers`` setting names them.

    Called once, when the logger registry is first used. Call ``register(logger)`` for each
    :class:`~tlcore.specs.Logger`; its ``build(context)`` returns a :class:`~tlcore.specs.RunLogger` for one
    run, which receives the run's settings, each epoch's metrics, the final scores and the run directory's
    files. The core registers ``mlflow`` and ``tensorboard``. A logger that fails during a run is switched
    off with a warning; the run goes on.
    """
