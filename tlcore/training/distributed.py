"""Fine-tuning on several GPUs or machines with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun`` starts one process per GPU (or per CPU worker) and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`session` reads them. Without them (a plain
``tl train``) every helper here is a no-op for a single process.

What a distributed run means:

- ``batch_size`` is the **global** batch: each of N processes loads ``batch_size / N`` images per step
  and DDP averages the gradients, so a step covers the same images with the same learning-rate
  schedule as one process with the same settings. Changing N does not change the recipe.
- The training order is one permutation per epoch (DistributedSampler, seeded with the run's seed,
  ``set_epoch`` every epoch), split among the processes; a single process draws the same one.
- Validation is sharded across processes and the predictions are gathered, so every process
  computes the same metrics and early stopping agrees everywhere.
- Rank 0 alone writes files and shows progress. The other ranks stop after training; rank 0
  evaluates the test split and writes the run directory.
- Backend: ``nccl`` when the processes train on CUDA GPUs (each takes the GPU of its ``LOCAL_RANK``),
  ``gloo`` on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tlcore.config import RunConfig
from tlcore.errors import ConfigError


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` processes (1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_batch(self, batch_size: int) -> int:
        """Images per process and step: the global ``batch_size`` split evenly."""
        if batch_size % self.world_size:
            nearest = max(1, round(batch_size / self.world_size)) * self.world_size
            raise ConfigError(
                f"batch_size {batch_size} is the global batch and cannot be split evenly over "
                f"{self.world_size} processes",
                f"use a multiple of {self.world_size}, e.g. batch_size={nearest}",
            )
        return batch_size // self.world_size

    def steps_per_epoch(self, n: int, local_batch: int, drop_last: bool) -> int:
        shard = math.ceil(n / self.world_size)  # DistributedSampler pads the shards to equal length
        return max(1, shard // local_batch if drop_last else math.ceil(shard / local_batch))

    def sampler(self, dataset: Dataset[Any], seed: int, epoch: int) -> DistributedSampler[Any]:
        """This process's share of the epoch's permutation, ``randperm`` seeded with ``seed + epoch``.

        A single process uses the same sampler (one replica), so 1 and N processes see the same order.
        """
        sampler: DistributedSampler[Any] = DistributedSampler(
            dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed
        )
        sampler.set_epoch(epoch)
        return sampler

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def sum(self, *values: float) -> tuple[float, ...]:
        """Sums over all processes (the values themselves in a single process)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return tuple(float(v) for v in tensor.cpu())

    def predict(self, predict: Callable[[DataLoader[Any]], np.ndarray], loader: DataLoader[Any]) -> np.ndarray:
        """``predict(loader)`` over the whole dataset: each process predicts a shard, and all gather them."""
        if not self.enabled:
            return predict(loader)
        dataset = cast(Any, loader.dataset)
        shard = copy.copy(dataset)  # same transform and normalisation, every world_size-th record
        shard.records = dataset.records[self.rank :: self.world_size]
        local = (
            predict(
                DataLoader(
                    shard,
                    batch_size=loader.batch_size,
                    num_workers=loader.num_workers,
                    generator=torch.Generator(),
                )
            )
            if shard.records
            else None
        )
        parts: list[np.ndarray | None] = [None] * self.world_size
        dist.all_gather_object(parts, local)
        first = next(p for p in parts if p is not None)
        out = np.empty((len(dataset.records), *first.shape[1:]), dtype=first.dtype)
        for rank, part in enumerate(parts):
            if part is not None:
                out[rank :: self.world_size] = part
        return out


_CURRENT = Context()


def current() -> Context:
    """The context of this process (a single-process one outside :func:`session`)."""
    return _CURRENT


def _from_env() -> tuple[int, int, int]:
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise ConfigError(
            "WORLD_SIZE is set but RANK is missing or not a number", "start distributed runs with torchrun"
        ) from None


@contextlib.contextmanager
def session(config: RunConfig) -> Iterator[Context]:
    """Join the process group torchrun describes (if any) for the duration of a run."""
    global _CURRENT
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        yield _CURRENT
        return
    rank, world_size, local_rank = _from_env()
    if config.technique != "fine-tuning":
        raise ConfigError(
            "torchrun distributes fine-tuning only", "run feature extraction as one process: it is one pass"
        )
    if config.balanced_sampling:
        raise ConfigError(
            "balanced_sampling is not available with torchrun", "use class_weights=balanced to weigh rare classes"
        )
    if config.device.startswith("cuda:"):
        raise ConfigError(
            f"device={config.device} pins every process to one GPU",
            "use device=auto or device=cuda: each process takes the GPU of its LOCAL_RANK",
        )
    use_cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    ctx = Context(rank, world_size, local_rank, backend)
    ctx.local_batch(config.batch_size)  # fail before any work when the batch does not split
    if use_cuda:
        torch.cuda.set_device(local_rank)  # torch.device("cuda") now means this process's GPU
    dist.init_process_group(backend)
    if not ctx.is_main:
        from tlcore.runtime import console

        config.progress = False
        console.quiet = True
    _CURRENT = ctx
    try:
        yield ctx
    finally:
        _CURRENT = Context()
        dist.destroy_process_group()


class StepModule:
    """The module training steps call: the model itself, wrapped in DDP when distributed, compiled if asked.

    DDP fixes the set of parameters it synchronises when it is built, so it is rebuilt when the
    frozen stages change (gradual unfreezing); it then broadcasts rank 0's weights, which are
    identical on every rank anyway.
    """

    def __init__(self, model: nn.Module, ctx: Context, compile: bool = False) -> None:
        self.model, self.ctx, self.compile = model, ctx, compile
        self._key: object = None
        self._module: nn.Module | None = None
        self._ddp: Any = None  # the DistributedDataParallel wrapper, when distributed

    def for_frozen(self, key: object) -> nn.Module:
        """The module for an epoch whose frozen stages are described by ``key``."""
        if self._module is None or (self.ctx.enabled and key != self._key):
            module: nn.Module = self.model
            if self.ctx.enabled:
                from torch.nn.parallel import DistributedDataParallel

                ids = [self.ctx.local_rank] if self.ctx.backend == "nccl" else None
                module = self._ddp = DistributedDataParallel(self.model, device_ids=ids)
            self._module = cast(nn.Module, torch.compile(module)) if self.compile else module
            self._key = key
        return self._module

    def accumulating(self, sync: bool) -> contextlib.AbstractContextManager[object]:
        """The context of one batch's forward and backward pass: with ``sync`` False (the batch only adds
        gradients to its optimizer step's group) DDP skips the all-reduce, which the group's last batch
        then does for the summed gradients. Compiled modules synchronise every batch (same result)."""
        if sync or self._ddp is None or self.compile:
            return contextlib.nullcontext()
        return cast(contextlib.AbstractContextManager[object], self._ddp.no_sync())
