"""Default augmentation pipelines for natural photos."""

from __future__ import annotations

from collections.abc import Callable

from tlcore import hookimpl
from tlcore.data import transforms
from tlcore.specs import Augmentation


@hookimpl
def register_augmentations(register: Callable[[Augmentation], None]) -> None:
    for name, build in (("standard", transforms.standard), ("light", transforms.light), ("none", transforms.none)):
        register(Augmentation(name=name, description=(build.__doc__ or "").strip(), build=build))
