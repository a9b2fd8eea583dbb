"""Fixtures for the agriculture plugin's tests: a plugin host, tiny generated leaf folders and tile sets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tlcore_agriculture
from tlcore.plugins import PluginHost

BANDS = ["blue", "green", "red", "nir", "rededge"]


@pytest.fixture(scope="session", autouse=True)
def isolated_tlcore_env(tlcore_isolated_env: Path) -> Iterator[None]:
    """tlcore's isolated caches (no ~/.cache, no hub downloads), and one torch thread (shared machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def host() -> PluginHost:
    """The core's defaults plus this plugin, without other installed entry points."""
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(tlcore_agriculture, name="agriculture")
    return host


def write_images(folder: Path, n: int, seed: int = 0, size: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"leaf{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def images() -> Callable[..., list[Path]]:
    """``images(folder, n, seed=0)``: write ``n`` random 32x32 PNGs."""
    return write_images


def synthetic_tiles(
    root: Path,
    fields: int = 6,
    tiles_per_field: int = 8,
    size: int = 16,
    fmt: str = "npy",
    noise: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Five-band float32 tiles whose yield is a known function of NDVI (plus noise), one CSV row per tile.

    Each tile has a canopy fraction ``f``: vegetation (high NIR, low red) in smooth patches over a share
    ``f`` of its pixels, soil elsewhere, so its mean NDVI rises with ``f``; yield = 2 + 8 * mean NDVI + noise.
    Tiles of a field sit side by side (x, y) and share a field-level offset, like real fields.
    """
    import cv2
    import tifffile

    rng = np.random.default_rng(seed)
    (root / "tiles").mkdir(parents=True, exist_ok=True)
    soil = np.array([0.10, 0.14, 0.18, 0.25, 0.22], dtype=np.float32)
    leaf = np.array([0.04, 0.10, 0.05, 0.50, 0.30], dtype=np.float32)
    rows = []
    for f in range(fields):
        field_bias = rng.uniform(-0.15, 0.15)
        for t in range(tiles_per_field):
            cover = float(np.clip(rng.uniform(0.05, 0.95) + field_bias, 0.02, 0.98))
            # Canopy in patches (a coarse random field, smoothed), not salt-and-pepper pixels.
            field_noise = cv2.resize(rng.random((4, 4)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
            mask = field_noise >= np.quantile(field_noise, 1.0 - cover)
            tile = np.where(mask[:, :, None], leaf, soil) * rng.uniform(0.9, 1.1, (size, size, 1))
            tile = (tile + rng.normal(0, 0.005, tile.shape)).astype(np.float32)
            red, nir = tile[:, :, 2], tile[:, :, 3]
            ndvi = float(np.mean((nir - red) / (nir + red)))
            name = f"tiles/f{f}_t{t}.{'npy' if fmt == 'npy' else 'tif'}"
            if fmt == "npy":
                np.save(root / name, tile)
            else:  # band-sequential, as GDAL/rasterio write multispectral GeoTIFFs
                tifffile.imwrite(root / name, np.moveaxis(tile, 2, 0), photometric="minisblack")
            rows.append(
                {
                    "path": name,
                    "yield": 2.0 + 8.0 * ndvi + rng.normal(0, noise),
                    "field": f"field{f}",
                    "x": 1000.0 * f + 10.0 * t,
                    "y": 500.0 * (f % 2) + 5.0 * t,
                    "ndvi": ndvi,
                }
            )
    df = pd.DataFrame(rows)
    df.drop(columns=["ndvi"]).to_csv(root / "tiles.csv", index=False)
    return df


@pytest.fixture(scope="session")
def tiles() -> Callable[..., pd.DataFrame]:
    """``tiles(root, fields=6, tiles_per_field=8, size=16, fmt="npy"|"tif", noise=0.05, seed=0)``."""
    return synthetic_tiles
