"""What a backbone costs on this machine: parameters, FLOPs, measured throughput and training memory."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from tlcore.runtime import autocast


@dataclass(frozen=True)
class Cost:
    parameters: int
    gflops: float  # per image at the input size, counted by torch's FlopCounterMode (1 MAC = 2 FLOPs)
    input_size: int
    batch_size: int
    images_per_s: float  # eval forward passes (synthetic input), the machine's capacity (see Rate)
    train_images_per_s: float  # forward + backward + optimizer-free step, likewise
    wall_images_per_s: float  # the same two, by the wall clock: what this moment's share of the machine gave
    wall_train_images_per_s: float
    train_memory_mb: float  # weights + grads + AdamW state + activations saved for backward, at batch_size
    peak_memory_mb: float | None  # the allocator's peak during that training step (CUDA only)
    device: str

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, float):
                d[key] = round(value, 3 if key == "gflops" else 1)
        return d


@dataclass(frozen=True)
class Rate:
    """Images/s from the fastest of several timed batches. On a CPU also from the process's CPU time
    (times the threads it uses): on a shared machine the wall clock measures the other users too,
    while CPU time measures what the cores do for this model when they are free."""

    wall: float
    cpu: float | None

    @property
    def capacity(self) -> float:
        return self.cpu if self.cpu is not None else self.wall


def count_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one eval forward pass of ``x``. In eval mode whatever mode ``model`` is in (restored after):
    a model fresh from the factory is in training mode when cached features spared it every forward pass,
    and BatchNorm in training mode refuses a single image at a 1x1 feature map (and would update its
    running statistics)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())


def _timed(step: Any, n: int, device: torch.device, min_seconds: float) -> Rate:
    """Run ``step`` once to warm up, then time it until ``min_seconds`` passed (at least 3 times)."""
    step()
    _sync(device)
    walls: list[float] = []
    cpus: list[float] = []
    while sum(walls) < min_seconds or len(walls) < 3:
        w, c = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    cpu = n * torch.get_num_threads() / min(cpus) if device.type == "cpu" and min(cpus) > 0 else None
    return Rate(wall=n / min(walls), cpu=cpu)


def measure_throughput(model: nn.Module, x: torch.Tensor, device: torch.device, min_seconds: float = 1.0) -> Rate:
    """Eval forward passes of the batch ``x``."""
    model.eval()

    def step() -> None:
        with torch.inference_mode(), autocast(device):
            model(x)

    return _timed(step, len(x), device, min_seconds)


def measure_training(model: nn.Module, x: torch.Tensor, device: torch.device) -> tuple[Rate, float, float | None]:
    """One training step's rate and memory: parameters x 4 (weights, grads, two AdamW moments) plus every
    activation autograd saves for the backward pass (counted once per storage by saved-tensor hooks).
    On CUDA the allocator's real peak is returned too."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    def step() -> None:
        with autocast(device):
            out = model(x)
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)

    params = sum(p.numel() * p.element_size() for p in model.parameters())
    was_training = model.training
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            step()
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        rate = _timed(step, len(x), device, min_seconds=0.0)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return rate, (4 * params + sum(saved.values())) / 2**20, peak


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_cost(model: nn.Module, input_size: int, channels: int, device: torch.device, batch_size: int = 8) -> Cost:
    """All cost figures for ``model`` (already on ``device``) at ``input_size`` x ``input_size``."""
    x = torch.randn(batch_size, channels, input_size, input_size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    flops = count_flops(model, x[:1])
    infer = measure_throughput(model, x, device)
    train, memory, peak = measure_training(model, x, device)
    return Cost(
        parameters=sum(p.numel() for p in model.parameters()),
        gflops=flops / 1e9,
        input_size=input_size,
        batch_size=batch_size,
        images_per_s=infer.capacity,
        train_images_per_s=train.capacity,
        wall_images_per_s=infer.wall,
        wall_train_images_per_s=train.wall,
        train_memory_mb=memory,
        peak_memory_mb=peak,
        device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
    )
