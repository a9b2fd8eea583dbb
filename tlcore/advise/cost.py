"""What a backbone costs on this machine: parameters, FLOPs, measured throughput and training memory."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tlcore.train.runtime import autocast

#: A training step costs about three forward passes (the backward pass computes gradients with
#: respect to both activations and weights, about twice the forward FLOPs: Kaplan et al. 2020).
TRAIN_STEP_FORWARDS = 3.0


@dataclass(frozen=True)
class Cost:
    parameters: int
    gflops: float  # per image at the input size, counted by torch's FlopCounterMode (1 MAC = 2 FLOPs)
    input_size: int
    images_per_s: float  # measured forward throughput (inference, batch ``batch_size``, synthetic input)
    batch_size: int
    train_memory_mb: float  # weights + grads + AdamW state + activations saved for backward, at batch_size
    peak_memory_mb: float | None  # the allocator's peak during that training step (CUDA only)
    device: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("gflops", "images_per_s", "train_memory_mb", "peak_memory_mb"):
            if d[key] is not None:
                d[key] = round(d[key], 3 if key == "gflops" else 1)
        return d

    @property
    def train_images_per_s(self) -> float:
        """Estimated fine-tuning throughput: a training step costs about three forward passes."""
        return self.images_per_s / TRAIN_STEP_FORWARDS


def count_flops(model: nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return float(counter.get_total_flops())


def measure_throughput(model: nn.Module, x: torch.Tensor, device: torch.device, min_seconds: float = 1.0) -> float:
    """Images/s of eval forward passes after one warm-up batch, timed for at least ``min_seconds``."""
    model.eval()
    with torch.inference_mode(), autocast(device):
        model(x)
        _sync(device)
        done, start = 0, time.perf_counter()
        while True:
            model(x)
            _sync(device)
            done += len(x)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds and done >= 2 * len(x):
                return done / elapsed


def training_memory(model: nn.Module, x: torch.Tensor, device: torch.device) -> tuple[float, float | None]:
    """Bytes of one training step: parameters x 4 (weights, grads, two AdamW moments) plus every
    activation autograd saves for the backward pass (counted once per storage by saved-tensor hooks).
    On CUDA the allocator's real peak is returned too."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    params = sum(p.numel() * p.element_size() for p in model.parameters())
    was_training = model.training
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device):
            out = model(x)
        out.float().sum().backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return (4 * params + sum(saved.values())) / 2**20, peak


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_cost(model: nn.Module, input_size: int, channels: int, device: torch.device, batch_size: int = 8) -> Cost:
    """All cost figures for ``model`` (already on ``device``) at ``input_size`` x ``input_size``."""
    x = torch.randn(batch_size, channels, input_size, input_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    flops = count_flops(model, x[:1])
    ips = measure_throughput(model, x, device)
    memory, peak = training_memory(model, x, device)
    for p in model.parameters():
        p.grad = None
    return Cost(
        parameters=sum(p.numel() for p in model.parameters()),
        gflops=flops / 1e9,
        input_size=input_size,
        images_per_s=ips,
        batch_size=batch_size,
        train_memory_mb=memory,
        peak_memory_mb=peak,
        device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
    )
