"""Device choice, mixed precision and progress bars: the parts of a run that depend on the machine.

Precision: :func:`resolve_precision` is the one rule that turns the ``precision`` setting and a device into
the arithmetic of every forward pass (fine-tuning, feature extraction, scoring through tlcore.predict):

- ``auto``: bf16 on CUDA GPUs with bf16 in hardware (compute capability 8.0+), fp16 with loss scaling on older
  CUDA GPUs (V100, T4, ...), fp32 on the CPU and on Apple GPUs (MPS).
- ``bf16``: anywhere torch offers it: CUDA GPUs that torch reports bf16 support for, the CPU, MPS on macOS 14+.
- ``fp16``: with loss scaling, on CUDA, the CPU and MPS.
- ``fp32``: everywhere.

bf16 and fp16 mean autocast: weights and optimizer state stay float32, matrix products and convolutions
run in the lower precision. fp16's narrow range needs a gradient scaler (:func:`grad_scaler`); bf16 has
float32's range and needs none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import warnings
from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tlcore.cpu_memory import keep_freed_memory
from tlcore.errors import ConfigError, TlcoreWarning


def make_console() -> Console:
    """The console for progress bars and messages (stderr).

    In Jupyter, rich draws live bars as ipywidgets and warns once per bar when that package is missing;
    without it the bars print as plain text instead."""
    out = Console(stderr=True)
    if out.is_jupyter and importlib.util.find_spec("ipywidgets") is None:
        out = Console(stderr=True, force_jupyter=False)
    return out


console = make_console()


def warn(message: str) -> None:
    """Tell the user about ``message``: a :class:`TlcoreWarning` to the caller of the library function,
    which ``tl`` prints as one ``warning: ...`` line."""
    warnings.warn(message, TlcoreWarning, stacklevel=2)


def pick_device(setting: str) -> torch.device:
    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise ConfigError(f"unknown device {setting!r}", "use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA GPU is visible", "use device=cpu or device=auto")
    return device


#: The autocast dtype of each resolved precision; fp32 runs without autocast.
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def native_bf16(device: torch.device) -> bool:
    """Whether the CUDA GPU computes bf16 in hardware (compute capability 8.0 and newer: A100, H100, RTX 30xx
    and later; ROCm GPUs). Older cards emulate it, slower than fp16."""
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= (8, 0)


def resolve_precision(setting: str, device: torch.device) -> str:
    """The precision forward passes on ``device`` run in: ``bf16``, ``fp16`` or ``fp32`` (see the table in
    this module's docstring); a one-line ConfigError when the device cannot compute in the one asked for."""
    if setting == "auto":
        if device.type == "cuda":
            return "bf16" if native_bf16(device) else "fp16"
        return "fp32"  # the CPU and Apple GPUs: full precision unless asked (lower precision rarely pays there)
    if setting not in AUTOCAST_DTYPES:
        raise ConfigError(f"unknown precision {setting!r}", "use auto, bf16, fp16 or fp32")
    if setting == "fp32":
        return setting
    if not torch.amp.is_autocast_available(device.type):
        raise ConfigError(
            f"precision={setting}: torch has no mixed precision on {device.type}", "use precision=fp32 or auto"
        )
    if setting == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"precision=bf16 but {torch.cuda.get_device_name(device)} cannot compute in bf16",
            "use precision=fp16 (with loss scaling) or auto",
        )
    if setting == "bf16" and device.type == "mps" and not torch.backends.mps.is_macos_or_newer(14, 0):
        raise ConfigError("precision=bf16 on MPS needs macOS 14 or newer", "use precision=fp16 or fp32")
    return setting


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager[object]:
    """Autocast to the dtype :func:`resolve_precision` picks for ``precision`` on ``device``; nothing for fp32."""
    dtype = AUTOCAST_DTYPES[resolve_precision(precision, device)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """The gradient scaler training needs in ``precision`` on ``device``: one for fp16 (its small range
    underflows small gradients unless the loss is scaled up), None otherwise."""
    if resolve_precision(precision, device) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def resolve_workers(setting: int | None, device: torch.device) -> int:
    """DataLoader workers: ``None`` means 0 on CPU (on a small machine the model needs every core;
    decoding in the main process measured faster on 2 cores) and most cores on a GPU machine."""
    if setting is not None:
        return setting
    if device.type == "cpu":
        return 0
    return max(1, min(16, (os.cpu_count() or 2) - 2))


def loader_options(workers: int, device: torch.device) -> dict[str, Any]:
    """Keyword arguments for a DataLoader on ``device`` with ``workers`` processes."""
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers:
        options.update(prefetch_factor=4, persistent_workers=False)
        # N workers x an all-core OpenCV pool oversubscribe the CPU, and a worker that calls into a
        # pool inherited through fork can deadlock: workers get single-threaded OpenCV from the start.
        import cv2

        cv2.setNumThreads(1)
    return options


M = TypeVar("M", bound=torch.nn.Module)


def prepare_model(model: M, device: torch.device) -> M:
    """Move a model to ``device`` in channels_last (``Module.to`` works in place).

    channels_last speeds up convolutions on CUDA and, measured here, on CPU too
    (EfficientNet-Lite0 fine-tuning on 2 cores: 16.7 -> 20-28 images/s). On the CPU the process also keeps
    freed memory instead of faulting it in again every batch (tlcore.cpu_memory)."""
    if device.type == "cpu":
        keep_freed_memory()
    model.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar with ETA (hidden when disabled)."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
    with bar:
        yield bar
