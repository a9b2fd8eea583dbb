"""Fixtures for the medical plugin's tests: an isolated cache, a plugin host, and writers for tiny
DICOM files, NIfTI volumes and MedMNIST archives."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

import tlcore_medical
from tlcore.plugins import PluginHost


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
    assert host.add_plugin(tlcore_medical, name="medical")
    return host


def write_dicom(
    path: Path,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float = 1.0,
    intercept: float = 0.0,
    window: tuple[float, float] | None = None,
    patient: str = "P0",
    bits_stored: int = 16,
    signed: bool = False,
) -> Path:
    """An uncompressed single-frame grey DICOM (explicit VR little endian) holding ``stored`` as 16-bit."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.Modality = patient, "CR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.RescaleSlope, ds.RescaleIntercept = str(slope), str(intercept)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = str(window[0]), str(window[1])
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def brain_volume(shape: Sequence[int] = (20, 24, 12), lesion: tuple[int, int] | None = (5, 8), seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A float volume (an ellipsoid 'head' in a dark background, a bright 'lesion') and its mask.

    Slices ``lesion[0]..lesion[1]-1`` along the last axis hold a 3x3 lesion (9 mask voxels each).
    The first and last two slices are background only.
    """
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    head = (x**2 + y**2 < 0.8) & (np.abs(z) < 0.75)
    volume = np.where(head, 600.0 + rng.normal(0, 20, shape), 0.0).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    if lesion is not None:
        cx, cy = shape[0] // 2, shape[1] // 2
        mask[cx - 1 : cx + 2, cy - 1 : cy + 2, lesion[0] : lesion[1]] = 1
        volume[mask == 1] = 1400.0
    return volume, mask


def write_medmnist(path: Path, counts: dict[str, int], size: int = 28, rgb: bool = False, labels: int = 2,
                   multilabel: bool = False, seed: int = 0) -> Path:
    """An official-format MedMNIST npz: ``{split}_images`` uint8 and ``{split}_labels`` ``(N, 1)`` or ``(N, L)``."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, n in counts.items():
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (rng.integers(0, 2, (n, labels)) if multilabel
                                     else (np.arange(n) % labels).reshape(n, 1)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture(scope="session")
def dicom() -> object:
    """:func:`write_dicom`: ``dicom(path, stored, photometric=..., slope=..., intercept=..., window=...)``."""
    return write_dicom


@pytest.fixture(scope="session")
def nifti() -> object:
    """:func:`write_nifti`: ``nifti(path, data, affine=None)``."""
    return write_nifti


@pytest.fixture(scope="session")
def brain() -> object:
    """:func:`brain_volume`: ``brain(shape, lesion=(first, stop), seed)`` -> (volume, mask)."""
    return brain_volume


@pytest.fixture(scope="session")
def medmnist_npz() -> object:
    """:func:`write_medmnist`: ``medmnist_npz(path, {"train": n, ...}, size, rgb, labels, multilabel)``."""
    return write_medmnist


def write_brain_mat(path: Path, image: np.ndarray, label: int, patient: str) -> Path:
    """A file laid out like the figshare set's MATLAB v7.3 files: MATLAB's text header in a 512-byte user block,
    then HDF5 (column-major, doubles, char codes)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as handle:
        group = handle.create_group("cjdata")
        group["image"] = image.T.astype(np.int16)
        group["label"] = np.array([[float(label)]])
        group["PID"] = np.array([[ord(c)] for c in patient], dtype=np.uint16)
        group["tumorMask"] = np.zeros(image.T.shape, dtype=np.uint8)
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    return path


@pytest.fixture(scope="session")
def brain_mat() -> object:
    """:func:`write_brain_mat`: ``brain_mat(path, image, label, patient)``."""
    return write_brain_mat
