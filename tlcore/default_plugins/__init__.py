"""The core's own defaults, registered through the same hooks as any third-party plugin."""

from tlcore.default_plugins import augmentations, backbones, datasets, heads, perturbations, presets

DEFAULT_PLUGINS = [datasets, augmentations, backbones, heads, presets, perturbations]
