"""The aerial-tiles adapter: GeoTIFF and .npy tiles, band names, vegetation indices, grouped splits, safety."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from tlcore.config import RunConfig
from tlcore.data.prepare import prepare_data
from tlcore.errors import ConfigError, DataError
from tlcore.plugins import PluginHost
from tlcore.specs import DatasetAdapter
from tlcore_agriculture.aerial_tiles import TileReader, spatial_blocks
from tlcore_agriculture.indices import band_key, index_positions, normalised_difference

BANDS = ["blue", "green", "red", "nir", "rededge"]


@pytest.fixture
def adapter(host: PluginHost) -> DatasetAdapter:
    return host.adapters.get("agriculture/aerial-tiles")


def _ndvi(tile: np.ndarray) -> np.ndarray:
    red, nir = tile[:, :, 2].astype(np.float64), tile[:, :, 3].astype(np.float64)
    return (nir - red) / (nir + red)


@pytest.mark.parametrize("fmt", ["tif", "npy"])
def test_reads_tiles_and_appends_ndvi(adapter: DatasetAdapter, tmp_path: Path, tiles: Callable, fmt: str) -> None:
    table = tiles(tmp_path, fields=2, tiles_per_field=3, size=12, fmt=fmt)
    ds = adapter.load(tmp_path, {"bands": BANDS, "indices": ["ndvi", "ndre"]})
    assert ds.task == "regression" and ds.classes == ["yield"] and ds.channels == 7
    records = sorted(ds.splits["train"], key=lambda r: r.path)
    assert len(records) == 6
    row = table.set_index("path").loc[str(Path(records[0].path).relative_to(tmp_path))]
    assert records[0].target == pytest.approx(row["yield"])
    assert isinstance(records[0].target, float)

    tile = ds.reader(records[0].path)
    assert tile.shape == (12, 12, 7) and tile.dtype == np.float32
    raw = np.load(records[0].path) if fmt == "npy" else np.moveaxis(tifffile.imread(records[0].path), 0, 2)
    np.testing.assert_allclose(tile[:, :, :5], raw)  # the bands, in file order
    np.testing.assert_allclose(tile[:, :, 5], _ndvi(raw), rtol=1e-5, atol=1e-6)
    ndre = (raw[:, :, 3] - raw[:, :, 4]) / (raw[:, :, 3] + raw[:, :, 4])
    np.testing.assert_allclose(tile[:, :, 6], ndre, rtol=1e-5, atol=1e-6)
    assert float(tile[:, :, 5].mean()) == pytest.approx(row["ndvi"], abs=1e-5)  # the generator's own NDVI
    assert ds.provenance["indices"] == ["ndvi", "ndre"]
    assert ds.provenance["bands"] == BANDS


def test_tiff_layouts_and_header_reads(tmp_path: Path) -> None:
    """Band-interleaved (HxWxC) and band-sequential (CxHxW) GeoTIFFs read the same."""
    tile = np.random.default_rng(0).random((10, 14, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(tile, 2, 0), photometric="minisblack")
    tifffile.imwrite(tmp_path / "contig.tif", tile, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "deflate.tif", np.moveaxis(tile, 2, 0), photometric="minisblack", compression="zlib")
    np.save(tmp_path / "chw.npy", np.moveaxis(tile, 2, 0))
    reader = TileReader(bands=5)
    for name in ("planar.tif", "contig.tif", "deflate.tif", "chw.npy"):
        np.testing.assert_array_equal(reader(str(tmp_path / name)), tile, err_msg=name)
    tifffile.imwrite(tmp_path / "single.tif", tile[:, :, 0])
    assert TileReader(bands=1)(str(tmp_path / "single.tif")).shape == (10, 14, 1)
    with pytest.raises(DataError, match="has 5 bands, the data set has 4"):
        TileReader(bands=4)(str(tmp_path / "planar.tif"))
    with pytest.raises(DataError, match="not found"):
        reader(str(tmp_path / "missing.npy"))


def test_nodata_becomes_zero_after_indices() -> None:
    a = np.array([[0.5, np.nan, 0.0]], dtype=np.float32)
    b = np.array([[0.1, 0.2, 0.0]], dtype=np.float32)
    out = normalised_difference(a, b)
    assert out[0, 0] == pytest.approx(0.4 / 0.6)
    assert out[0, 2] == 0.0  # 0/0 is 0, not NaN


def test_index_names_and_band_aliases() -> None:
    assert band_key("Red Edge") == band_key("red_edge") == band_key("RE") == "rededge"
    assert band_key("NIR") == "nir" and band_key("swir1") == "swir1"
    bands = ["B", "G", "R", "NIR", "RedEdge", "SWIR"]
    positions = dict(index_positions(["ndvi", "gndvi", "vari", "nd:nir:swir"], bands))
    assert positions == {"ndvi": (3, 2), "gndvi": (3, 1), "vari": (0, 1, 2), "nd:nir:swir": (3, 5)}
    with pytest.raises(ConfigError, match="needs band"):
        index_positions(["ndre"], ["blue", "green", "red", "nir"])
    with pytest.raises(ConfigError, match="unknown vegetation index"):
        index_positions(["ndxx"], bands)
    with pytest.raises(ConfigError, match="same band twice"):
        index_positions([], ["red", "R"])


def test_field_column_keeps_each_field_in_one_split(host: PluginHost, tmp_path: Path, tiles: Callable) -> None:
    tiles(tmp_path, fields=8, tiles_per_field=5, size=8)
    prepared = prepare_data(host, str(tmp_path), RunConfig(adapter="agriculture/aerial-tiles", val_fraction=0.2))
    assert prepared.adapter == "agriculture/aerial-tiles"
    fields_in = {split: {r.group for r in recs} for split, recs in prepared.dataset.splits.items()}
    assert set(fields_in) == {"train", "val", "test"}
    assert all(fields_in[split] for split in fields_in)
    assert not fields_in["train"] & fields_in["val"]
    assert not fields_in["train"] & fields_in["test"]
    assert not fields_in["val"] & fields_in["test"]
    assert sum(len(r) for r in prepared.dataset.splits.values()) == 40
    assert prepared.dataset.provenance["grouping"]["by"] == "column"


def test_spatial_blocks_group_neighbours(adapter: DatasetAdapter, tmp_path: Path, tiles: Callable) -> None:
    table = tiles(tmp_path, fields=4, tiles_per_field=4, size=8)
    ds = adapter.load(tmp_path, {"spatial_blocks": 2, "group_column": "field"})
    groups = {Path(r.path).name: r.group for r in ds.splits["train"]}
    assert len(set(groups.values())) <= 4
    assert ds.provenance["grouping"] == {
        "by": "spatial_blocks",
        "grid": [2, 2],
        "columns": ["x", "y"],
        "groups": len(set(groups.values())),
        "groups_in_several_given_splits": [],
    }
    # Neighbours (the tiles of one field, 10 m apart) share a block; far-apart fields do not.
    for _, field_rows in table.groupby("field"):
        assert len({groups[Path(p).name] for p in field_rows["path"]}) == 1
    assert groups["f0_t0.npy"] != groups["f3_t0.npy"]
    assert spatial_blocks(np.array([0.0, 1.0, 9.0, 10.0]), np.zeros(4), 2) == [
        "block-0-0",
        "block-0-0",
        "block-0-1",
        "block-0-1",
    ]
    with pytest.raises(ConfigError, match="spatial_blocks"):
        adapter.load(tmp_path, {"spatial_blocks": 1})


def test_columns_are_auto_detected_or_named(adapter: DatasetAdapter, tmp_path: Path, tiles: Callable) -> None:
    table = tiles(tmp_path, fields=2, tiles_per_field=2, size=8)
    renamed = table.rename(columns={"path": "tile_path", "yield": "bu_per_acre", "field": "farm"}).drop(columns="ndvi")
    renamed.to_csv(tmp_path / "tiles.csv", index=False)
    ds = adapter.load(tmp_path, {})  # x and y are coordinates: bu_per_acre is the one numeric column left
    assert ds.classes == ["bu_per_acre"]
    assert {r.group for r in ds.splits["train"]} == {"field0", "field1"}  # `farm` found as the group
    renamed.assign(elevation=[3.0, 4.0, 5.0, 6.0]).to_csv(tmp_path / "tiles.csv", index=False)
    with pytest.raises(DataError, match="no target column") as info:
        adapter.load(tmp_path, {})  # bu_per_acre or elevation?
    assert "bu_per_acre, elevation" in str(info.value)
    assert adapter.load(tmp_path, {"target_column": "elevation"}).classes == ["elevation"]
    with pytest.raises(DataError, match="no column 'yield_kg'"):
        adapter.load(tmp_path, {"target_column": "yield_kg"})


def test_split_column_and_missing_targets(adapter: DatasetAdapter, tmp_path: Path, tiles: Callable) -> None:
    table = tiles(tmp_path, fields=3, tiles_per_field=2, size=8).drop(columns="ndvi")
    table["split"] = ["train", "train", "train", "train", "test", "test"]
    table.loc[1, "yield"] = np.nan
    table.to_csv(tmp_path / "tiles.csv", index=False)
    ds = adapter.load(tmp_path, {})
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 3, "test": 2}
    assert ds.provenance["rows_without_tile_or_target"] == 1
    table["yield"] = table["yield"].astype(object)
    table.loc[2, "yield"] = "lots"
    table.to_csv(tmp_path / "tiles.csv", index=False)
    with pytest.raises(DataError, match="non-numeric"):
        adapter.load(tmp_path, {})


def test_paths_must_stay_inside_the_data_root(adapter: DatasetAdapter, tmp_path: Path) -> None:
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros((4, 4, 1), dtype=np.float32))
    root = tmp_path / "data"
    root.mkdir()
    pd.DataFrame({"path": ["../secret.npy"], "yield": [1.0]}).to_csv(root / "tiles.csv", index=False)
    with pytest.raises(DataError, match="outside"):
        adapter.load(root, {})
    pd.DataFrame({"path": [str(outside)], "yield": [1.0]}).to_csv(root / "tiles.csv", index=False)
    with pytest.raises(DataError, match="outside"):
        adapter.load(root, {})  # absolute paths too


def test_band_names_must_match_the_tiles(adapter: DatasetAdapter, tmp_path: Path, tiles: Callable) -> None:
    tiles(tmp_path, fields=1, tiles_per_field=2, size=8)
    with pytest.raises(DataError, match="bands names 4"):
        adapter.load(tmp_path, {"bands": ["blue", "green", "red", "nir"]})
    with pytest.raises(ConfigError, match="needs band"):
        adapter.load(tmp_path, {"indices": ["ndvi"]})  # unnamed bands: NDVI cannot find red and nir
    with pytest.raises(DataError, match="do not exist"):
        (tmp_path / "tiles" / "f0_t1.npy").unlink()
        adapter.load(tmp_path, {})


def test_detect(adapter: DatasetAdapter, tmp_path: Path, tiles: Callable, images: Callable) -> None:
    assert adapter.detect is not None
    tiles(tmp_path / "tiles", fields=1, tiles_per_field=2, size=8)
    assert adapter.detect(tmp_path / "tiles")
    assert adapter.detect(tmp_path / "tiles" / "tiles.csv")
    photos = tmp_path / "photos"
    paths = images(photos / "img", 2)
    pd.DataFrame({"path": [p.name for p in paths], "label": ["a", "b"]}).to_csv(photos / "labels.csv", index=False)
    assert not adapter.detect(photos)  # PNG photos with class labels: the core csv-manifest's
    assert not adapter.detect(tmp_path / "nowhere")
