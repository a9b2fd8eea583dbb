"""``medical/nifti``: MRI/CT volumes (nibabel) as 2-D slices or 2.5-D slice stacks.

Each volume is reoriented to RAS (``as_closest_canonical``), so ``axis: axial|coronal|sagittal``
means the same plane in every file, then normalised once per volume (percentile clip, or a
``window: [center, width]`` in scanner units such as Hounsfield) to uint8 and cached on disk.
A record addresses one slice as ``VOLUME::INDEX``; ``mode: 2.5d`` stacks slices ``i-k, i, i+k``
as the three channels (``context: k``), so the 2-D backbone sees some through-plane context.

Labels: the volume's label from class folders or a manifest, or a per-slice label from a mask
volume: a slice is positive when the mask holds at least ``min_mask_voxels`` voxels in it,
negative when it holds none; slices in between are left out as ambiguous. Nearly empty slices
(``min_foreground``) are left out too. ``Record.group`` is the patient (manifest column,
``group_pattern``) or the volume, so the slices of one patient never straddle splits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tlcore.data.prediction_inputs import expand
from tlcore.errors import ConfigError, DataError
from tlcore.specs import MEMBER_SEPARATOR, LabeledDataset, PredictionInputs, Record
from tlcore_medical import arrays, folders, intensity, tables

NAME = "medical/nifti"
AXES = {"sagittal": 0, "coronal": 1, "axial": 2}
IMAGE_DIRS = ("images", "imagestr", "image", "imgs", "volumes")
MASK_DIRS = ("masks", "labelstr", "labels", "mask", "segmentations", "segmentation", "seg")
LAYOUT = ("expected <root>/<split>/<class>/*.nii.gz (volume labels), <root>/[<split>/]images/ + masks/ "
          "(slice labels from masks), or a CSV manifest with path, label or mask, and patient columns")
FOREGROUND_LEVEL = 10  # of 255: brighter than this counts as tissue for min_foreground


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".nii", ".nii.gz")) and not name.startswith(".")


def volume_stem(path: Path | str) -> str:
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem


@dataclass(frozen=True)
class VolumeSettings:
    """How a volume becomes uint8; part of the disk-cache key and of the reader's repr."""

    percentiles: tuple[float, float] = intensity.DEFAULT_PERCENTILES
    window: tuple[float, float] | None = None
    volume_channel: int = 0  # 4-D files (several sequences, e.g. the Decathlon's FLAIR/T1/T1c/T2): which one


def _canonical(path: str) -> np.ndarray:
    import nibabel as nib

    try:
        image = nib.as_closest_canonical(nib.load(path))  # type: ignore[no-untyped-call,unused-ignore]
        return np.asarray(image.dataobj, dtype=np.float32)  # applies scl_slope / scl_inter
    except FileNotFoundError:
        raise DataError(f"NIfTI file not found: {path}", "check the path or the manifest") from None
    except Exception as exc:  # nibabel raises several types for broken files
        raise DataError(f"cannot read NIfTI {path}: {type(exc).__name__}: {exc}", "remove or replace it") from None


def load_volume(path: str, settings: VolumeSettings) -> np.ndarray:
    """The volume as uint8 ``(X, Y, Z)`` in RAS orientation, memory-mapped from the cache."""

    def build() -> np.ndarray:
        data = _canonical(path)
        if data.ndim == 4:
            if not 0 <= settings.volume_channel < data.shape[3]:
                raise DataError(f"{path} has {data.shape[3]} volumes; volume_channel {settings.volume_channel} "
                                "is out of range", "--set adapter_options={volume_channel: 0}")
            data = data[..., settings.volume_channel]
        if data.ndim != 3:
            raise DataError(f"{path}: expected a 3-D volume, got shape {data.shape}")
        finite = np.nan_to_num(data)
        unit = (intensity.window(finite, *settings.window) if settings.window
                else intensity.percentile_window(finite, settings.percentiles))
        return intensity.to_uint8(unit)

    return arrays.cached_array({"kind": "nifti-uint8", **arrays.file_key(path), **asdict(settings)}, build)


def _plane(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    # rot90 puts anterior (or superior) up, so image columns run left-right as radiologists view them.
    return np.rot90(np.take(volume, index, axis=axis))


@dataclass(frozen=True)
class NiftiSliceReader:
    """``reader("VOLUME::INDEX")``: one slice (2-D) or three neighbouring slices as channels (2.5-D)."""

    axis: int = 2
    context: int = 0
    channels: int = 3
    settings: VolumeSettings = field(default_factory=VolumeSettings)

    def __call__(self, path: str) -> np.ndarray:
        file, _, member = path.rpartition(MEMBER_SEPARATOR)
        volume = load_volume(file, self.settings)
        index, last = int(member), volume.shape[self.axis] - 1
        if not 0 <= index <= last:
            raise DataError(f"{path}: slice {index} is outside 0..{last}")
        if self.context:
            planes = [_plane(volume, self.axis, min(max(j, 0), last))
                      for j in (index - self.context, index, index + self.context)]
            return np.ascontiguousarray(np.stack(planes, axis=2))
        return intensity.with_channels(_plane(volume, self.axis, index), self.channels)


@dataclass
class Slicing:
    """Which slices of a volume become records."""

    axis: int
    min_mask_voxels: int = 10
    mask_labels: tuple[int, ...] = ()
    min_foreground: float = 0.05
    slice_range: tuple[float, float] = (0.0, 1.0)
    stride: int = 1
    counts: dict[str, int] = field(default_factory=lambda: {"empty": 0, "ambiguous": 0})

    def indices(self, volume: np.ndarray) -> list[int]:
        n = volume.shape[self.axis]
        lo, hi = int(np.floor(self.slice_range[0] * n)), int(np.ceil(self.slice_range[1] * n))
        keep = []
        for i in range(max(lo, 0), min(hi, n), self.stride):
            if (np.take(volume, i, axis=self.axis) > FOREGROUND_LEVEL).mean() < self.min_foreground:
                self.counts["empty"] += 1
                continue
            keep.append(i)
        return keep

    def mask_label(self, mask: np.ndarray, index: int) -> int | None:
        plane = np.take(mask, index, axis=self.axis)
        hits = int(np.isin(plane, self.mask_labels).sum() if self.mask_labels else (plane > 0).sum())
        if hits >= self.min_mask_voxels:
            return 1
        if hits == 0:
            return 0
        self.counts["ambiguous"] += 1
        return None


def _axis(options: Mapping[str, Any]) -> int:
    value = options.get("axis", "axial")
    axis = AXES.get(str(value).lower(), value)
    if axis not in (0, 1, 2) or isinstance(axis, bool):
        raise ConfigError(f"{NAME}: axis must be axial, coronal, sagittal or 0-2, got {value!r}",
                          "--set adapter_options={axis: axial}")
    return int(axis)


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{NAME}: {key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def reader_from(options: Mapping[str, Any]) -> NiftiSliceReader:
    mode = str(options.get("mode", "2d")).lower()
    if mode not in ("2d", "2.5d"):
        raise ConfigError(f"{NAME}: mode must be 2d or 2.5d, got {mode!r}", "--set adapter_options={mode: 2.5d}")
    context = int(_number(options, "context", 1, 1, 32)) if mode == "2.5d" else 0
    channels = intensity.channels_option(options, NAME)
    if context and channels != 3:
        raise ConfigError(f"{NAME}: mode 2.5d makes 3 channels (the neighbouring slices); channels must be 3")
    settings = VolumeSettings(
        percentiles=intensity.pair_option(options, "percentiles", NAME, "[1, 99]") or intensity.DEFAULT_PERCENTILES,
        window=intensity.pair_option(options, "window", NAME, "[40, 400]"),
        volume_channel=int(_number(options, "volume_channel", 0, 0, 64)),
    )
    return NiftiSliceReader(axis=_axis(options), context=context, channels=channels, settings=settings)


def slicing_from(options: Mapping[str, Any], axis: int) -> Slicing:
    labels = options.get("mask_labels", ())
    if isinstance(labels, int):
        labels = (labels,)
    slice_range = intensity.pair_option(options, "slice_range", NAME, "[0.2, 0.8]") or (0.0, 1.0)
    if not 0 <= slice_range[0] < slice_range[1] <= 1:
        raise ConfigError(f"{NAME}: slice_range must be two fractions 0 <= lo < hi <= 1, got {list(slice_range)}")
    return Slicing(
        axis=axis,
        min_mask_voxels=int(_number(options, "min_mask_voxels", 10, 1, 1e9)),
        mask_labels=tuple(int(v) for v in labels),
        min_foreground=_number(options, "min_foreground", 0.05, 0, 1),
        slice_range=slice_range,
        stride=int(_number(options, "stride", 1, 1, 1000)),
    )


@dataclass
class Volume:
    split: str
    path: str
    group: str
    label: int | None = None  # volume-level label; None when a mask labels the slices
    mask: str | None = None


def _read_mask(path: str, shape: Sequence[int], image: str) -> np.ndarray:
    mask = _canonical(path)
    if mask.ndim == 4 and mask.shape[3] == 1:
        mask = mask[..., 0]
    if tuple(mask.shape) != tuple(shape):
        raise DataError(f"mask {path} has shape {mask.shape}, its image {image} has {tuple(shape)}",
                        "masks must be on the image's voxel grid")
    result: np.ndarray = np.rint(mask).astype(np.int32)
    return result


def _records(volumes: list[Volume], reader: NiftiSliceReader, slicing: Slicing) -> dict[str, list[Record]]:
    splits: dict[str, list[Record]] = {}
    for vol in volumes:
        image = load_volume(vol.path, reader.settings)
        mask = _read_mask(vol.mask, image.shape, vol.path) if vol.mask else None
        for i in slicing.indices(image):
            target = vol.label if mask is None else slicing.mask_label(mask, i)
            if target is not None:
                splits.setdefault(vol.split, []).append(Record(f"{vol.path}{MEMBER_SEPARATOR}{i}", target, vol.group))
    return splits


def _group(path: Path, pattern: str | None, strip: str = "") -> str:
    found = tables.group_from(str(path), pattern)
    stem = volume_stem(path)
    return found or (stem[: -len(strip)] if strip and stem.endswith(strip) else stem)


def _paired_dirs(folder: Path) -> tuple[Path, Path] | None:
    subs = {d.name.lower(): d for d in folders.subdirs(folder)}
    image = next((subs[n] for n in IMAGE_DIRS if n in subs), None)
    mask = next((subs[n] for n in MASK_DIRS if n in subs), None)
    return (image, mask) if image is not None and mask is not None else None


def _mask_for(image: Path, mask_dir: Path, suffixes: Sequence[str]) -> Path | None:
    stem = volume_stem(image)
    for name in [image.name] + [f"{stem}{s}{ext}" for s in suffixes for ext in (".nii.gz", ".nii")]:
        if (mask_dir / name).is_file():
            return mask_dir / name
    return None


def _from_paired(root: Path, options: Mapping[str, Any]) -> list[Volume] | None:
    pattern = options.get("group_pattern")
    suffixes = [str(options.get("mask_suffix", "")), "_mask", "_seg", "_label"]
    volumes: list[Volume] = []
    for split, folder in folders.split_folders(root).items():
        pair = _paired_dirs(folder)
        if pair is None:
            continue
        for image in folders.files_under(pair[0], is_nifti):
            mask = _mask_for(image, pair[1], [s for s in suffixes if s])
            if mask is None:
                raise DataError(f"no mask for {image} in {pair[1]}", "name masks like their images (or *_mask)")
            volumes.append(Volume(split, str(image), _group(image, pattern), mask=str(mask)))
    return volumes or None


def _from_siblings(root: Path, options: Mapping[str, Any]) -> list[Volume]:
    """BraTS style: ``P/P_flair.nii.gz`` next to ``P/P_seg.nii.gz`` (options image_suffix, mask_suffix)."""
    image_suffix, mask_suffix = str(options.get("image_suffix", "")), str(options["mask_suffix"])
    pattern = options.get("group_pattern")
    volumes: list[Volume] = []
    for split, folder in folders.split_folders(root).items():
        for image in folders.files_under(folder, is_nifti):
            stem = volume_stem(image)
            if stem.endswith(mask_suffix) or (image_suffix and not stem.endswith(image_suffix)):
                continue
            base = stem[: len(stem) - len(image_suffix)] if image_suffix else stem
            mask = next((image.with_name(base + mask_suffix + ext) for ext in (".nii.gz", ".nii")
                         if image.with_name(base + mask_suffix + ext).is_file()), None)
            if mask is not None:
                volumes.append(Volume(split, str(image), _group(image, pattern, image_suffix), mask=str(mask)))
    if not volumes:
        raise DataError(f"{root}: no image volume ending in {image_suffix!r} has a {mask_suffix!r} mask next to it",
                        "check image_suffix and mask_suffix")
    return volumes


def _from_manifest(root: Path, options: Mapping[str, Any]) -> tuple[list[Volume], list[str] | None]:
    """Volumes from a CSV: each row has a label (volume-level) or a mask (slice labels), not a mix."""
    from tlcore_medical.manifest import manifest_rows, resolver_for, row_group

    rows, cols, _ = manifest_rows(root, options, NAME, need_label=False)
    mask_col = tables.pick_column(pd.DataFrame(columns=list(rows[0][2])), options.get("mask_column"),
                                  tables.MASK_COLUMNS, "mask", "mask_column")
    resolver = resolver_for(root, options, NAME)
    pattern = options.get("group_pattern")
    volumes: list[Volume] = []
    labels: list[str] = []
    for split, file, row in rows:
        group = row_group(row, file, cols, pattern) or volume_stem(file)
        mask_cell = row.get(mask_col) if mask_col else None
        if isinstance(mask_cell, str) and mask_cell.strip():
            mask = resolver.resolve(mask_cell)
            if mask is None:
                raise DataError(f"{NAME}: mask {mask_cell!r} not found", "fix the mask column's paths")
            volumes.append(Volume(split, file, group, mask=mask))
        elif cols.label and isinstance(row.get(cols.label), str):
            volumes.append(Volume(split, file, group))
            labels.append(str(row[cols.label]).strip())
        else:
            raise DataError(f"{NAME}: the manifest row of {file} has neither a label nor a mask")
    if labels and len(labels) != len(volumes):
        raise DataError(f"{NAME}: a manifest must label every volume, or give every volume a mask, not a mix")
    return volumes, labels or None


def detect(root: Path) -> bool:
    return folders.has_file_among_first(root, is_nifti)


def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
    reader = reader_from(options)
    slicing = slicing_from(options, reader.axis)
    classes: list[str]
    volume_classes: list[str] | None = None
    if root.is_file() or options.get("csv"):
        layout = "manifest"
        volumes, labels = _from_manifest(root, options)
        if labels is not None:
            volume_classes = [str(c) for c in options.get("classes") or sorted(set(labels))]
            index = {c: i for i, c in enumerate(volume_classes)}
            unknown = sorted(set(labels) - set(index))
            if unknown:
                raise DataError(f"{NAME}: labels not in classes: {', '.join(unknown[:5])}")
            for vol, label in zip(volumes, labels, strict=True):
                vol.label = index[label]
    elif not root.is_dir():
        raise DataError(f"data folder {root} does not exist", LAYOUT)
    elif options.get("mask_suffix"):
        layout, volumes = "image and mask side by side", _from_siblings(root, options)
    elif (paired := _from_paired(root, options)) is not None:
        layout, volumes = "images/ and masks/ folders", paired
    else:
        layout = "class folders"
        volume_classes, pairs = folders.labelled_files(root, is_nifti, "NIfTI", LAYOUT)
        pattern = options.get("group_pattern")
        volumes = [Volume(split, str(p), _group(p, pattern), label=k) for split, items in pairs.items()
                   for p, k in items]
    if volume_classes is not None:
        classes = volume_classes
    else:
        classes = [str(c) for c in options.get("classes") or ("no_lesion", "lesion")]
        if len(classes) != 2:
            raise ConfigError(f"{NAME}: mask labels make two classes (negative, positive); got classes {classes}")
    splits = _records(volumes, reader, slicing)
    if "train" not in splits:
        raise DataError(f"{NAME}: no training slices left in {root} "
                        f"({slicing.counts['empty']} nearly empty, {slicing.counts['ambiguous']} ambiguous)",
                        "lower min_foreground or min_mask_voxels")
    return LabeledDataset(
        classes=classes, splits=splits, reader=reader, root=root, channels=3 if reader.context else reader.channels,
        provenance={
            "format": "NIfTI", "layout": layout, "volumes": len(volumes),
            "axis": next(k for k, v in AXES.items() if v == reader.axis),
            "mode": "2.5d" if reader.context else "2d",
            "slices_left_out": dict(slicing.counts),
        },
    )


def predict_inputs(paths: list[Path], options: Mapping[str, Any], channels: int) -> PredictionInputs:
    """Every slice of each new volume that training would have kept (same axis, range and foreground
    rule, every slice rather than every ``stride``-th), as ``VOLUME::INDEX``."""
    reader = reader_from(options)
    slicing = slicing_from(options, reader.axis)
    slicing.stride = 1
    items = []
    for file in expand(paths, is_nifti):
        volume = load_volume(file, reader.settings)
        items += [f"{file}{MEMBER_SEPARATOR}{i}" for i in slicing.indices(volume)]
    return PredictionInputs(items, reader)
