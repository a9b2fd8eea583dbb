"""Fine-tuning: freeze policies, discriminative learning rates, warm-up + cosine, early stopping, resume."""

from __future__ import annotations

import csv
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from tlcore import io_atomic
from tlcore.config import RunConfig
from tlcore.data.dataset import ImageDataset, reseed_worker
from tlcore.errors import ConfigError, WeightsError
from tlcore.models.backbones import keep_frozen_bn_in_eval, set_trainable
from tlcore.models.objective import Objective
from tlcore.models.transfer import TransferModel
from tlcore.predict import predict_proba
from tlcore.runtime import autocast, console, grad_scaler, loader_options, progress, seed_everything, warn
from tlcore.training import distributed
from tlcore.training.probe import class_weights

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_STATE = "checkpoint_state.pt"
BEST = "best.safetensors"


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    train_seconds: float = 0.0
    images_seen: int = 0
    stopped_early: bool = False


def trainable_groups(strategy: str, n_groups: int, freeze_stages: int, epoch: int, unfreeze_every: int) -> int:
    """How many backbone stage groups, counted from the input side, stay frozen at ``epoch``."""
    if strategy == "head-only":
        return n_groups
    if strategy == "full":
        return 0
    if strategy == "gradual":
        # ULMFiT-style: head only first, then one more stage from the top every `unfreeze_every` epochs.
        unfrozen = epoch // unfreeze_every
        return max(freeze_stages, n_groups - unfrozen)
    return min(freeze_stages, n_groups)  # partial, lp-ft


def param_groups(model: TransferModel, groups: list[list[nn.Parameter]], config: RunConfig) -> list[dict[str, Any]]:
    """Head at ``lr``; backbone stage i at ``lr * backbone_lr_mult * layer_decay**(depth from top)``.

    Biases and norm weights get no weight decay.
    """
    out: list[dict[str, Any]] = []

    def add(params: list[nn.Parameter], lr: float) -> None:
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        if decay:
            out.append({"params": decay, "lr": lr, "weight_decay": config.weight_decay})
        if no_decay:
            out.append({"params": no_decay, "lr": lr, "weight_decay": 0.0})

    n = len(groups)
    for i, params in enumerate(groups):
        decay = config.layer_decay ** (n - 1 - i) if config.layer_decay else 1.0
        add(params, config.lr * config.backbone_lr_mult * decay)
    add(list(model.head.parameters()), config.lr)
    for g in out:
        g["initial_lr"] = g["lr"]
    return out


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return 0.01 + 0.99 * step / warmup_steps
        progress_ = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    return factor


class Stepper:
    """Micro-batch losses into optimizer steps: ``accumulation`` batches per step, fp16 loss scaling,
    gradient clipping, then the learning-rate schedule and the weight average, once per step.

    A batch's loss is divided by the number of batches in its group (``accumulation``; fewer for an epoch's
    last, partial group), so a step's gradient is the mean over its batches' mean losses: equal to one
    batch ``accumulation`` times as large when the batches are full and the model has no BatchNorm."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        accumulation: int = 1,
        clip: float | None = None,
        scaler: torch.amp.GradScaler | None = None,
        ema: Any = None,
        model: nn.Module | None = None,
    ) -> None:
        self.optimizer, self.scheduler, self.accumulation, self.clip = optimizer, scheduler, accumulation, clip
        self.scaler, self.ema, self.model = scaler, ema, model

    @staticmethod
    def steps(batches: int, accumulation: int) -> int:
        """Optimizer steps in an epoch of ``batches``: the last, partial group steps too."""
        return math.ceil(batches / accumulation)

    def completes_step(self, index: int, batches: int) -> bool:
        """Whether batch ``index`` (from 0) of an epoch of ``batches`` is the last of its group."""
        return (index + 1) % self.accumulation == 0 or index + 1 == batches

    def backward(self, loss: torch.Tensor, index: int, batches: int) -> bool:
        """Add batch ``index``'s gradients; step when it completes its group (then True)."""
        first = index - index % self.accumulation
        scaled = loss / min(self.accumulation, batches - first)
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        if not self.completes_step(index, batches):
            return False
        self.step()
        return True

    def step(self) -> None:
        """Clip (after unscaling), step the optimizer (the scaler skips a step whose gradients overflowed),
        clear the gradients, then advance the schedule and the weight average."""
        if self.clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, self.clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # fp16: a first step skipped for overflow makes torch warn that the schedule moved first
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            self.scheduler.step()
        if self.ema is not None and self.model is not None:
            self.ema.update(self.model, step=self.scheduler.last_epoch)


def _save_state_dict(model: nn.Module, path: Path) -> None:
    io_atomic.save_safetensors(model.state_dict(), path)


def load_resume_state(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir``'s resume state (None when no epoch was checkpointed); tensors and numbers only:
    a state file that carries code is refused, never run."""
    state_path = run_dir / CHECKPOINT_STATE
    if not state_path.exists():
        return None
    try:
        state = dict(torch.load(state_path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise WeightsError(
            f"cannot resume from {state_path}: not a plain checkpoint ({type(exc).__name__})",
            "start the run again without --resume, into a new --output",
        ) from None
    if not isinstance(state.get("model"), dict):  # the weights travel in the state file
        raise WeightsError(
            f"cannot resume from {state_path}: it holds no model weights",
            "start the run again without --resume, into a new --output",
        )
    return state


def check_state_fits(model: nn.Module, state: dict[str, Any], run_dir: Path) -> None:
    """A one-line error, before anything is written, when the checkpointed weights do not fit ``model``."""
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state["model"].items()}
    hint = "resume with the run's own data and settings, or train a new run into another --output"
    for key in sorted(ours.keys() | theirs.keys()):
        if ours.get(key) != theirs.get(key):
            raise ConfigError(
                f"cannot resume {run_dir}: its checkpoint's {key} has shape {theirs.get(key)}, "
                f"the model of these settings and data {ours.get(key)}",
                hint,
            )


def fine_tune(
    model: TransferModel,
    groups: list[list[nn.Parameter]],
    train_set: ImageDataset,
    val_loader: DataLoader[Any],
    val_targets: np.ndarray,
    classes: list[str],
    config: RunConfig,
    device: torch.device,
    run_dir: Path,
    resume: bool = False,
    workers: int = 0,
    objective: Objective | None = None,
    run_started: float | None = None,
    state: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_set``; the best epoch's weights end up in ``run_dir/best.safetensors``.

    ``objective`` gives the task's loss, activation, metrics and monitor (default: classification).
    ``run_started`` is the ``time.perf_counter()`` at which the whole run began (data preparation and a
    linear probe included); each history row's ``elapsed_s`` counts from it (default: from this call).
    ``state``: the resume state, already loaded and checked (:func:`load_resume_state`).
    ``on_epoch``: called with each epoch's history row (a row of metrics.csv) once it is checkpointed, in the
    process that writes the run (the run's loggers, tlcore.training.tracking).
    """
    from safetensors.torch import load_file

    if objective is None:
        objective = Objective.for_training(
            "classification", classes, config, np.array([r.target for r in train_set.records], dtype=np.int64)
        )
    targets = objective.targets(train_set.records)
    k = len(classes)
    optimizer = torch.optim.AdamW(param_groups(model, groups, config), lr=config.lr)
    use_mix = config.mixup > 0 or config.cutmix > 0
    dist = distributed.current()  # a single process unless started by torchrun
    batch_size = dist.local_batch(config.batch_size)
    if use_mix:
        # timm's Mixup needs even batches, so incomplete ones are dropped; never drop them all.
        batch_size = min(batch_size, len(train_set) // 2 * 2)
        if batch_size < 2:
            raise ConfigError("mixup/cutmix need at least 2 training images", "set mixup=0 cutmix=0")
    # BatchNorm cannot train on one image: with BatchNorm layers, a last batch that would hold one is
    # dropped (a different image each epoch, as the sampler reshuffles). Models without BatchNorm keep
    # it, so their schedule does not depend on how the data divide over processes.
    shard = math.ceil(len(train_set) / dist.world_size)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    drop_last = use_mix or (has_bn and shard > batch_size and shard % batch_size == 1)
    batches_per_epoch = dist.steps_per_epoch(len(train_set), batch_size, drop_last=drop_last)
    steps_per_epoch = Stepper.steps(batches_per_epoch, config.grad_accumulation)  # optimizer steps
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, int(config.warmup_epochs * steps_per_epoch))
    )
    mixer = None
    if use_mix:
        from timm.data.mixup import Mixup

        mixer = Mixup(
            mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=config.label_smoothing, num_classes=k
        )

    scaler = grad_scaler(config.precision, device)  # fp16 only
    result = FitResult()
    start_epoch = 0
    if resume and state is None:
        state = load_resume_state(run_dir)
    if resume and state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        result.history = list(state["history"])
        result.best_epoch, result.best_score = int(state["best_epoch"]), float(state["best_score"])
        console.print(f"resuming after epoch {start_epoch} (best so far: epoch {result.best_epoch})")
    ema = weight_average(model, config.ema, state if resume else None)
    scored = ema.module if ema is not None else model  # what val scores, checkpoints and the run keep
    stepper = Stepper(optimizer, scheduler, config.grad_accumulation, config.grad_clip, scaler, ema, model)

    n_groups = len(groups)
    # Compiled for the training steps only; evaluation runs the eager module (no eval-mode recompile).
    step_models = distributed.StepModule(model, dist, config.compile)
    t_start = time.perf_counter() - sum(h.get("seconds", 0.0) for h in result.history)
    # A resumed run continues the clock of the stored history (time lost to the interruption not counted).
    clock_origin = (time.perf_counter() if run_started is None else run_started) - _elapsed(result.history)
    with progress(config.progress) as bar:
        epoch_task = bar.add_task("fine-tuning", total=config.epochs, completed=start_epoch, info="")
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            frozen = trainable_groups(config.strategy, n_groups, config.freeze_stages, epoch, config.unfreeze_every)
            for i, params in enumerate(groups):
                set_trainable(params, i >= frozen)
            step_model = step_models.for_frozen(frozen)
            # Each epoch has its own seed, so a resumed run sees the same batches as an uninterrupted one.
            epoch_seed = config.seed * 1000 + epoch
            seed_everything(epoch_seed)  # torch (dropout), numpy (mixup), random
            if hasattr(train_set.transform, "set_random_seed"):
                train_set.transform.set_random_seed(epoch_seed)
            gen = torch.Generator().manual_seed(epoch_seed)
            sampler: Sampler[Any] = dist.sampler(train_set, seed=config.seed * 1000, epoch=epoch)
            if config.balanced_sampling:
                w = class_weights(targets, k)[targets]
                sampler = WeightedRandomSampler(w.tolist(), len(w), replacement=True, generator=gen)
            loader = DataLoader(
                train_set,
                batch_size=batch_size,
                shuffle=False,  # the sampler shuffles
                sampler=sampler,
                generator=gen,
                **loader_options(workers, device),
                worker_init_fn=reseed_worker,
                drop_last=drop_last,
            )
            model.train()
            keep_frozen_bn_in_eval(model)
            total_loss, seen = 0.0, 0
            batches = len(loader)
            batch_task = bar.add_task(f"epoch {epoch + 1}/{config.epochs}", total=batches, info="")
            optimizer.zero_grad(set_to_none=True)
            for index, (x, y) in enumerate(loader):
                x, y = train_set.normalize(x, device), objective.batch_targets(y.to(device, non_blocking=True))
                if mixer is not None:
                    x, y = mixer(x, y)
                # Batches inside a group only add up gradients: no all-reduce between processes until the last.
                with step_models.accumulating(stepper.completes_step(index, batches)):
                    with autocast(device, config.precision):
                        logits = step_model(x)
                    loss = (
                        torch.sum(-y * torch.log_softmax(logits.float(), dim=1), dim=1).mean()
                        if mixer is not None
                        else objective.loss(logits, y)
                    )
                    stepper.backward(loss, index, batches)
                total_loss += float(loss.detach()) * len(x)
                seen += len(x)
                bar.update(batch_task, advance=1, info=f"loss {total_loss / seen:.3f}")
            bar.remove_task(batch_task)
            total_loss, seen_all = dist.sum(total_loss, seen)
            seen = int(seen_all)
            train_seconds = time.perf_counter() - t0
            outputs = dist.predict(
                lambda loader: predict_proba(
                    scored, loader, device, tta=config.tta, activate=objective.activate, precision=config.precision
                ),
                val_loader,
            )
            val = objective.metrics(val_targets, objective.to_units(outputs))
            score = objective.score(val)
            row = {
                "epoch": epoch + 1,
                "train_loss": total_loss / max(1, seen),
                **objective.history_row(val),
                "lr_head": optimizer.param_groups[-1]["lr"],
                "frozen_stages": frozen,
                "train_images_per_s": seen / train_seconds,
                "seconds": time.perf_counter() - t0,
                "elapsed_s": time.perf_counter() - clock_origin,  # since the run began: time to accuracy
            }
            result.history.append(row)
            result.images_seen += seen
            improved = score > result.best_score
            if improved:
                result.best_epoch, result.best_score = epoch + 1, score
            if dist.is_main:  # one writer per run directory
                _checkpoint(model, optimizer, scheduler, epoch, result, improved, run_dir, ema, scaler)
            if on_epoch is not None and dist.is_main:
                on_epoch(row)
            bar.update(
                epoch_task,
                advance=1,
                info=f"val {objective.monitor} {val.get(objective.monitor) or 0:.3f} (best {result.best_epoch})",
            )
            last = epoch + 1 == config.epochs
            if config.early_stopping and not last and epoch + 1 - result.best_epoch >= config.early_stopping:
                result.stopped_early = True
                console.print(f"early stopping: no val {objective.monitor} gain for {config.early_stopping} epochs")
                break
    result.train_seconds = time.perf_counter() - t_start
    if not dist.is_main:
        return result  # rank 0 evaluates and saves the model
    if config.checkpoint == "last":
        # The end of the cosine schedule: on a small, saturated val set the "best" epoch is mostly noise.
        _save_state_dict(scored, run_dir / BEST)
        result.best_epoch = len(result.history)
        if ema is not None:
            model.load_state_dict(ema.module.state_dict())
    else:
        model.load_state_dict(load_file(str(run_dir / BEST)))
    return result


def weight_average(model: nn.Module, decay: float | None, state: dict[str, Any] | None) -> Any:
    """timm's ``ModelEmaV3`` of ``model`` (None when ``decay`` is unset), restored from a resume ``state``.

    The decay warms up (``1 - (1 + step)^-3/4``, capped at ``decay``): a few hundred steps on a small set
    would otherwise leave the average close to the starting weights."""
    if decay is None:
        return None
    from timm.utils.model_ema import ModelEmaV3

    ema = ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=3 / 4)
    if state is not None and "ema" in state:
        ema.module.load_state_dict(state["ema"])
    elif state is not None:
        warn("the checkpoint has no weight average: it starts from the resumed weights")
    return ema


def _elapsed(history: list[dict[str, Any]]) -> float:
    """Run seconds at the last stored epoch; histories from before ``elapsed_s`` sum their epochs."""
    if not history:
        return 0.0
    last = history[-1].get("elapsed_s")
    return float(last) if last is not None else float(sum(h.get("seconds", 0.0) for h in history))


def _checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    result: FitResult,
    improved: bool,
    run_dir: Path,
    ema: Any = None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """After every epoch, each file written then renamed, so kill -9 loses at most one epoch.

    ``checkpoint_state.pt`` holds everything a resume needs (weights included) in one atomic write,
    so a kill between two of these files can never pair one epoch's weights with another's optimizer.
    """
    scored = ema.module if ema is not None else model
    if improved:
        _save_state_dict(scored, run_dir / BEST)
    _write_metrics(run_dir / "metrics.csv", result.history)
    _save_state_dict(scored, run_dir / CHECKPOINT)
    averaged = {"ema": {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}} if ema is not None else {}
    scaling = {"scaler": scaler.state_dict()} if scaler is not None else {}  # fp16's loss scale
    io_atomic.torch_save(
        {
            **averaged,
            **scaling,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "best_score": result.best_score,
        },
        run_dir / CHECKPOINT_STATE,
    )


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)

    io_atomic.atomic_write(path, write)
