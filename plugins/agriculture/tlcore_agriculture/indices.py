"""Vegetation indices computed from named bands, appended to a tile as extra channels.

Only ratio indices are offered: they do not depend on the bands' scale, so they are the same on
reflectances (0-1), scaled reflectances (0-10000) and raw digital numbers. Indices with additive
constants (SAVI, EVI) assume reflectance and would be wrong on the other two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tlcore.errors import ConfigError

# Spellings people use for the same band (multispectral drone cameras, Sentinel-2 exports).
BAND_ALIASES: dict[str, tuple[str, ...]] = {
    "blue": ("b", "blue"),
    "green": ("g", "green"),
    "red": ("r", "red"),
    "rededge": ("re", "rededge", "edge", "rededge1"),
    "nir": ("n", "nir", "nearinfrared", "nir1"),
}
_CANONICAL = {alias: band for band, aliases in BAND_ALIASES.items() for alias in aliases}


def band_key(name: str) -> str:
    """``"Red Edge"``, ``"red_edge"``, ``"RE"`` -> ``"rededge"``; unknown names are lower-cased and kept."""
    key = "".join(ch for ch in name.casefold() if ch.isalnum())
    return _CANONICAL.get(key, key)


def normalised_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b), 0 where both are 0 (no-data, shadows)."""
    total = a + b
    out = np.zeros_like(total)
    np.divide(a - b, total, out=out, where=np.abs(total) > 1e-12)
    result: np.ndarray = out
    return result


def vari(blue: np.ndarray, green: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Visible atmospherically resistant index (Gitelson 2002): green vegetation from RGB cameras."""
    total = green + red - blue
    out = np.zeros_like(total)
    np.divide(green - red, total, out=out, where=np.abs(total) > 1e-12)
    # The denominator can approach zero on soil; the index is meant for -1..1.
    result: np.ndarray = np.clip(out, -1.0, 1.0)
    return result


@dataclass(frozen=True)
class IndexSpec:
    name: str
    bands: tuple[str, ...]
    compute: Callable[..., np.ndarray]
    meaning: str


def _nd(name: str, a: str, b: str, meaning: str) -> IndexSpec:
    return IndexSpec(name, (a, b), normalised_difference, meaning)


INDICES: dict[str, IndexSpec] = {
    spec.name: spec
    for spec in (
        _nd("ndvi", "nir", "red", "normalised difference vegetation index: green biomass"),
        _nd("ndre", "nir", "rededge", "normalised difference red edge: chlorophyll, saturates later than NDVI"),
        _nd("gndvi", "nir", "green", "green NDVI: chlorophyll concentration"),
        _nd("ndwi", "green", "nir", "normalised difference water index (McFeeters): open water, canopy water"),
        IndexSpec("vari", ("blue", "green", "red"), vari, "visible atmospherically resistant index (RGB only)"),
    )
}


def index_spec(name: str) -> IndexSpec:
    """A named index, or ``nd:A:B`` for the normalised difference of any two named bands."""
    key = name.strip().casefold()
    if key.startswith("nd:"):
        parts = key.split(":")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ConfigError(f"index {name!r}: write a normalised difference as nd:BAND_A:BAND_B", "e.g. nd:nir:swir")
        a, b = band_key(parts[1]), band_key(parts[2])
        return _nd(key, a, b, f"({a} - {b}) / ({a} + {b})")
    if key not in INDICES:
        raise ConfigError(
            f"unknown vegetation index {name!r}", f"known: {', '.join(INDICES)}, or nd:BAND_A:BAND_B for any two bands"
        )
    return INDICES[key]


def index_positions(indices: Sequence[str], bands: Sequence[str]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """For each index, the channel positions of the bands it needs; a one-line error names what is missing."""
    keys = [band_key(b) for b in bands]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"bands {list(bands)} name the same band twice", "give each channel its own name")
    out = []
    for name in indices:
        spec = index_spec(name)
        missing = [b for b in spec.bands if b not in keys]
        if missing:
            raise ConfigError(
                f"index {name} needs band(s) {', '.join(missing)}; the bands are {', '.join(bands) or 'not named'}",
                "name the tile's channels in order with adapter_options={bands: [blue, green, red, nir, rededge]}",
            )
        out.append((spec.name, tuple(keys.index(b) for b in spec.bands)))
    return tuple(out)


def append_indices(tile: np.ndarray, positions: tuple[tuple[str, tuple[int, ...]], ...]) -> np.ndarray:
    """``HxWxC`` float32 -> ``HxWx(C+K)`` with one channel per index."""
    if not positions:
        return tile
    extra = [index_spec(name).compute(*(tile[:, :, i] for i in bands)) for name, bands in positions]
    return np.concatenate([tile, np.stack(extra, axis=2).astype(np.float32)], axis=2)
