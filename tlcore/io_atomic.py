"""Crash-safe file writes: write a temporary file in the same folder, flush it to disk, rename it.

``os.replace`` within one folder is atomic, so a reader (or a run resumed after ``kill -9``) sees
either the old file or the new one, never half of one. A failed write (disk full, permissions)
removes the temporary file and raises :class:`~tlcore.errors.StorageError`: one line, with a hint.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tlcore.errors import StorageError


def _hint(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space (or write elsewhere with --output); a fine-tuning run continues with --resume"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "write the run somewhere you may write, with --output DIR"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return "choose another --output, or move the file away"
    return "check the folder and the disk"


def ensure_dir(path: Path | str) -> Path:
    """``mkdir -p`` with a one-line error (a file in the way, no permission, disk full)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if path.exists() and not path.is_dir():
            reason = "a file of that name is in the way"
        raise StorageError(f"could not create folder {path}: {reason}", _hint(exc)) from None
    return path


def check_writable(folder: Path | str) -> None:
    """A one-line :class:`StorageError` now, not after minutes of work, when no file can be created in
    ``folder`` (read-only, no permission, disk full); the folder is created when missing."""
    folder = ensure_dir(folder)
    probe = folder / f".tl-write-check.{os.getpid()}.tmp"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise StorageError(f"cannot write in {folder}: {reason}", _hint(exc)) from None


def is_writable(folder: Path | str) -> bool:
    try:
        check_writable(folder)
    except StorageError:
        return False
    return True


def atomic_write(path: Path | str, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` to produce the file, then move it onto ``path`` in one step."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the bytes reach the disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise StorageError(f"could not write {path}: {reason}", _hint(exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path | str, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_safetensors(tensors: Mapping[str, Any], path: Path | str, metadata: dict[str, str] | None = None) -> None:
    """Tensors to a ``.safetensors`` file (made contiguous and moved to the CPU first)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def torch_save(obj: Any, path: Path | str) -> None:
    """``torch.save`` of plain containers of tensors and numbers (loadable with ``weights_only=True``)."""
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def numpy_save(array: Any, path: Path | str) -> None:
    import numpy as np

    def write(tmp: Path) -> None:
        with tmp.open("wb") as fh:  # a file object: np.save would append .npy to a bare name
            np.save(fh, array)

    atomic_write(path, write)
