"""Aerial tiles with a measured value (yield): a CSV manifest of tile path -> number.

Tiles are GeoTIFFs (tifffile; rasterio when installed and tifffile cannot decode one), ``.npy``
arrays or ordinary images, with any number of bands; the reader returns ``HxWxC`` float32, with
vegetation indices appended when asked. Neighbouring tiles share soil, management and weather, so
a random split leaks: tiles are grouped by a field column, or into a grid of spatial blocks from
their coordinates, and the core's grouped split keeps a group inside one split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlcore.errors import ConfigError, DataError
from tlcore.images import read_image
from tlcore.specs import SPLIT_NAMES, LabeledDataset, Record
from tlcore_agriculture.indices import append_indices, band_key, index_positions

TILE_SUFFIXES = (".tif", ".tiff", ".npy")
PATH_COLUMNS = ("path", "tile", "tile_path", "file", "filepath", "file_path", "filename", "image", "image_path")
TARGET_COLUMNS = ("yield", "target", "value", "label", "yield_t_ha", "yield_kg_ha", "grain_yield")
GROUP_COLUMNS = ("field", "field_id", "field_name", "group", "farm", "block")
SPLIT_COLUMNS = ("split", "fold", "subset")
X_COLUMNS = ("x", "easting", "lon", "longitude", "center_x", "col", "column")
Y_COLUMNS = ("y", "northing", "lat", "latitude", "center_y", "row")
NAME = "agriculture/aerial-tiles"
HINT = "a CSV with a tile path column and a numeric target column (e.g. path,yield,field)"


def _option_column(df: pd.DataFrame, options: Mapping[str, Any], key: str) -> str | None:
    name = options.get(key)
    if name is None:
        return None
    if name not in df.columns:
        raise DataError(f"manifest has no column {name!r} ({key})", f"columns are: {', '.join(map(str, df.columns))}")
    return str(name)


def _find(df: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    lower = {str(c).strip().lower(): str(c) for c in df.columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _column(df: pd.DataFrame, options: Mapping[str, Any], key: str, candidates: Sequence[str]) -> str | None:
    return _option_column(df, options, key) or _find(df, candidates)


def _target_column(df: pd.DataFrame, options: Mapping[str, Any], taken: set[str]) -> str:
    named = _column(df, options, "target_column", TARGET_COLUMNS)
    if named is not None:
        return named
    # Otherwise the one numeric column that is not a coordinate, group or split.
    numeric = [str(c) for c in df.columns if str(c) not in taken and pd.api.types.is_numeric_dtype(df[c])]
    if len(numeric) == 1:
        return numeric[0]
    raise DataError(
        f"manifest has no target column (looked for {', '.join(TARGET_COLUMNS)}"
        + (f"; numeric columns: {', '.join(numeric)}" if numeric else "")
        + ")",
        "name it with --set 'adapter_options={target_column: NAME}'",
    )


def manifest_path(root: Path, options: Mapping[str, Any]) -> Path:
    if "csv" in options:
        path = Path(str(options["csv"]))
        return path if path.is_absolute() else root / path
    if root.is_file():
        return root
    csvs = sorted(root.glob("*.csv")) if root.is_dir() else []
    if len(csvs) == 1:
        return csvs[0]
    raise DataError(
        f"{root}: {'several' if csvs else 'no'} CSV manifests found",
        "pass --data FILE.csv or --set 'adapter_options={csv: NAME.csv}'",
    )


def _read_manifest(path: Path, nrows: int | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, nrows=nrows)
    except FileNotFoundError:
        raise DataError(f"manifest {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse manifest {path}: {str(exc).splitlines()[0]}") from None


def detect(root: Path) -> bool:
    """A CSV (or a folder with one) whose path column points at GeoTIFF or .npy tiles."""
    try:
        manifest = manifest_path(root, {})
        if manifest.suffix.lower() != ".csv":
            return False
        df = _read_manifest(manifest, nrows=20)
        column = _find(df, PATH_COLUMNS)
        if column is None or df.empty:
            return False
        paths = df[column].dropna().astype(str)
        return bool(len(paths)) and all(p.lower().endswith(TILE_SUFFIXES) for p in paths)
    except (OSError, DataError):
        return False


# -- reading tiles -----------------------------------------------------------------------------


def _to_hwc(array: np.ndarray, layout: str) -> np.ndarray:
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise DataError(f"expected a 2-D or 3-D tile array, got shape {array.shape}")
    # auto: the band axis is the short one (5x64x64 is channels-first, 64x64x5 channels-last).
    channels_first = layout == "chw" or (layout == "auto" and array.shape[0] < min(array.shape[1], array.shape[2]))
    return np.moveaxis(array, 0, 2) if channels_first else array


def _tiff_hwc(path: str) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
    except (ValueError, tifffile.TiffFileError) as exc:
        return _rasterio_hwc(path, exc)
    if "Y" not in axes or "X" not in axes:
        raise DataError(f"{path}: TIFF axes {axes!r} have no Y and X")
    # Y and X first, every other axis (bands 'S', planes 'Q'/'C'/'I') flattened into channels.
    array = np.moveaxis(array, [axes.index("Y"), axes.index("X")], [0, 1])
    return array.reshape(array.shape[0], array.shape[1], -1)


def _rasterio_hwc(path: str, cause: Exception) -> np.ndarray:
    try:
        import rasterio
    except ImportError:
        raise DataError(
            f"cannot decode GeoTIFF {path}: {cause}",
            "compressed GeoTIFFs (LZW, JPEG) need `pip install imagecodecs` (or rasterio)",
        ) from None
    with rasterio.open(path) as src:
        return np.moveaxis(src.read(), 0, 2)


def tile_shape(path: str, layout: str = "auto") -> tuple[int, int, int]:
    """``(H, W, C)`` of a tile, from its header where the format allows."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        shape = _to_hwc(np.load(path, mmap_mode="r", allow_pickle=False), layout).shape
    elif suffix in (".tif", ".tiff"):
        shape = _tiff_hwc(path).shape
    else:
        shape = read_image(path).shape
    return int(shape[0]), int(shape[1]), int(shape[2])


@dataclass(frozen=True)
class TileReader:
    """Path -> ``HxWxC`` float32 tile with index channels appended; picklable for DataLoader workers.

    Non-finite values (no-data) become 0 after the indices are computed.
    """

    bands: int
    indices: tuple[tuple[str, tuple[int, ...]], ...] = ()
    layout: str = "auto"

    def __call__(self, path: str) -> np.ndarray:
        suffix = Path(path).suffix.lower()
        try:
            if suffix == ".npy":
                raw = _to_hwc(np.load(path, allow_pickle=False), self.layout)
            elif suffix in (".tif", ".tiff"):
                raw = _tiff_hwc(path)
            else:
                raw = read_image(path, channels=1 if self.bands == 1 else 3)
        except FileNotFoundError:
            raise DataError(f"tile not found: {path}", "check the manifest") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read tile {path}: {exc}", "remove or replace the file") from None
        if raw.shape[2] != self.bands:
            raise DataError(
                f"tile {path} has {raw.shape[2]} bands, the data set has {self.bands}",
                "every tile must have the same bands in the same order",
            )
        tile = append_indices(raw.astype(np.float32), self.indices)
        result: np.ndarray = np.nan_to_num(tile, nan=0.0, posinf=0.0, neginf=0.0)
        return result


# -- grouping ----------------------------------------------------------------------------------


def spatial_blocks(x: np.ndarray, y: np.ndarray, n: int) -> list[str]:
    """An ``n x n`` grid over the tiles' extent: neighbouring tiles share a block name."""

    def cells(v: np.ndarray) -> np.ndarray:
        lo, hi = float(np.min(v)), float(np.max(v))
        if hi <= lo:
            return np.zeros(len(v), dtype=int)
        return np.clip(np.floor((v - lo) / (hi - lo) * n), 0, n - 1).astype(int)

    return [f"block-{i}-{j}" for i, j in zip(cells(y), cells(x), strict=True)]


def _blocks_option(options: Mapping[str, Any]) -> int | None:
    value = options.get("spatial_blocks")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError(
            f"{NAME}: spatial_blocks must be a whole number >= 2, got {value!r}",
            "e.g. adapter_options={spatial_blocks: 4} for a 4 x 4 grid of blocks",
        )
    return value


def _list_option(options: Mapping[str, Any], key: str) -> list[str]:
    value = options.get(key) or []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(
            f"{NAME}: {key} must be a list of names, got {value!r}",
            "e.g. adapter_options={bands: [blue, green, red, nir, rededge], indices: [ndvi, ndre]}",
        )
    return [str(v) for v in items]


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    """Read the manifest, check the tiles, group them, and build a regression data set."""
    manifest = manifest_path(root, options)
    df = _read_manifest(manifest)
    data_root = Path(str(options.get("tile_root", manifest.parent))).resolve()
    path_col = _column(df, options, "path_column", PATH_COLUMNS)
    if path_col is None:
        raise DataError(
            f"manifest {manifest} has no tile path column (looked for {', '.join(PATH_COLUMNS)})",
            "name it with --set 'adapter_options={path_column: NAME}'",
        )
    split_col = _column(df, options, "split_column", SPLIT_COLUMNS)
    group_col = _column(df, options, "group_column", GROUP_COLUMNS)
    blocks = _blocks_option(options)
    x_col = _column(df, options, "x_column", X_COLUMNS)
    y_col = _column(df, options, "y_column", Y_COLUMNS)
    taken = {c for c in (path_col, split_col, group_col, x_col, y_col) if c is not None}
    target_col = _target_column(df, options, taken)
    if target_col in taken:
        raise DataError(f"column {target_col!r} cannot be both the target and a path/group/split/coordinate column")

    values = pd.to_numeric(df[target_col], errors="coerce")
    bad = df[target_col].notna() & values.isna()
    if bad.any():
        raise DataError(
            f"target column {target_col!r} has non-numeric values, e.g. {df[target_col][bad].iloc[0]!r}",
            "a yield must be a number; leave unknown yields empty",
        )
    df = df.assign(**{target_col: values}).dropna(subset=[path_col, target_col])
    dropped = int(len(values) - len(df))
    if df.empty:
        raise DataError(f"manifest {manifest} has no rows with both a tile and a {target_col}", HINT)

    paths = []
    for raw in df[path_col].astype(str):
        path = (data_root / raw).resolve()
        if not path.is_relative_to(data_root):
            raise DataError(f"manifest path {raw!r} points outside {data_root}", "use tile paths inside the data root")
        paths.append(path)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} tile(s) in {manifest.name} do not exist, e.g. {missing[0]}",
            "fix the paths (relative to the CSV's folder) or remove those rows",
        )

    layout = str(options.get("layout", "auto")).lower()
    if layout not in ("auto", "hwc", "chw"):
        raise ConfigError(f"{NAME}: layout must be auto, hwc or chw (for .npy tiles), got {layout!r}")
    height, width, channels = tile_shape(str(paths[0]), layout)
    bands = _list_option(options, "bands")
    if bands and len(bands) != channels:
        raise DataError(
            f"bands names {len(bands)} channel(s) ({', '.join(bands)}) but {paths[0].name} has {channels}",
            "name every channel of the tile, in order",
        )
    indices = _list_option(options, "indices")
    positions = index_positions(indices, bands)
    reader = TileReader(bands=channels, indices=positions, layout=layout)

    if blocks is not None:
        if x_col is None or y_col is None:
            raise DataError(
                f"spatial_blocks needs x and y columns (looked for {', '.join(X_COLUMNS)} / {', '.join(Y_COLUMNS)})",
                "name them with adapter_options={x_column: .., y_column: ..}",
            )
        xy = df[[x_col, y_col]].apply(pd.to_numeric, errors="coerce")
        if xy.isna().any().any():
            raise DataError(f"columns {x_col!r}/{y_col!r} need a number in every row for spatial_blocks")
        groups: list[str | None] = list(spatial_blocks(xy[x_col].to_numpy(), xy[y_col].to_numpy(), blocks))
        grouping: dict[str, Any] = {"by": "spatial_blocks", "grid": [blocks, blocks], "columns": [x_col, y_col]}
    elif group_col is not None:
        # A tile without a field is its own group, so it cannot pull a field's tiles across splits.
        groups = [str(g) if pd.notna(g) else f"tile:{p}" for g, p in zip(df[group_col], paths, strict=True)]
        grouping = {"by": "column", "column": group_col}
    else:
        groups = [None] * len(df)
        grouping = {"by": None}

    splits: dict[str, list[Record]] = {}
    split_values = df[split_col] if split_col is not None else [None] * len(df)
    for path, target, group, split_value in zip(paths, df[target_col], groups, split_values, strict=True):
        split = "train"
        if split_col is not None and pd.notna(split_value):
            key = str(split_value).strip().lower()
            if key not in SPLIT_NAMES:
                raise DataError(f"manifest split value {split_value!r} is not train/val/test")
            split = SPLIT_NAMES[key]
        splits.setdefault(split, []).append(Record(str(path), float(target), group))
    if "train" not in splits:
        raise DataError(
            f"manifest {manifest} has no train rows", "mark some rows split=train, or drop the split column"
        )
    if grouping["by"] is not None:
        seen: dict[str, set[str]] = {}
        for split, records in splits.items():
            for r in records:
                seen.setdefault(str(r.group), set()).add(split)
        grouping["groups"] = len(seen)
        grouping["groups_in_several_given_splits"] = sorted(g for g, s in seen.items() if len(s) > 1)

    return LabeledDataset(
        classes=[target_col],
        splits=splits,
        task="regression",
        reader=reader,
        root=data_root,
        channels=channels + len(positions),
        provenance={
            "adapter": NAME,
            "manifest": str(manifest),
            "target_column": target_col,
            "tile_size": [height, width],
            "bands": bands or [f"band{i + 1}" for i in range(channels)],
            "band_keys": [band_key(b) for b in bands],
            "indices": [name for name, _ in positions],
            "grouping": grouping,
            "rows_without_tile_or_target": dropped,
        },
    )
