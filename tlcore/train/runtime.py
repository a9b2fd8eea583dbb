"""Device choice, mixed precision and progress bars: the parts of a run that depend on the machine."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import TypeVar

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tlcore.errors import ConfigError

console = Console(stderr=True)


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


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast on CUDA (no loss scaling needed); full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to ``device`` in channels_last: faster convolutions on CUDA and, measured, on CPU too
    (EfficientNet-Lite0 fine-tuning on 2 cores: 16.7 -> 20-28 images/s)."""
    memory_format = torch.channels_last if x.dim() == 4 else torch.contiguous_format
    return x.to(device, non_blocking=device.type == "cuda", memory_format=memory_format)


M = TypeVar("M", bound=torch.nn.Module)


def prepare_model(model: M, device: torch.device) -> M:
    """Move a model to ``device`` in channels_last (``Module.to`` works in place)."""
    model.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


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
