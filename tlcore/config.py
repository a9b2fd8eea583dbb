"""The run configuration: what a preset sets and ``--set key=value`` overrides."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from tlcore.errors import ConfigError, UnknownNameError
from tlcore.registry import Registry
from tlcore.specs import Preset

Technique = Literal["feature-extraction", "fine-tuning"]
Strategy = Literal["head-only", "partial", "full", "gradual", "lp-ft"]
#: The arithmetic of forward passes; tlcore.runtime.resolve_precision says what auto means on a device.
Precision = Literal["auto", "bf16", "fp16", "fp32"]
#: How a binary run picks its decision threshold on val (see tlcore.metrics.operating_point).
OPERATING_POINT_RULE = r"^(youden|(sensitivity|specificity):(0(\.\d+)?|1(\.0+)?|\.\d+))$"
#: Upper bounds that only refuse typos and absurd values: each is far above what a run uses, and each
#: value beyond it would exhaust memory or never finish (image_size=100000 asks OpenCV for ~39 GB).
MAX_IMAGE_SIZE = 2048  # presets use the weights' own size (224-384); large timm models reach 1024
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536  # the global batch of a many-GPU run
MAX_GRAD_ACCUMULATION = 1024
MAX_FEATURE_VIEWS = 100  # each view is a full backbone pass over train
MAX_BOOTSTRAP = 100_000
#: numpy seeds are 32-bit, and the engine derives seeds from this one (seed + 1 carves val): 31 bits
#: leave room for that.
MAX_SEED = 2**31 - 1


class RunConfig(BaseModel):
    """Every setting of a training run. Presets fill it in; ``--set`` overrides single keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    technique: Technique = Field("fine-tuning", description="feature-extraction (frozen backbone) or fine-tuning")
    # data
    adapter: str = Field("auto", description="dataset adapter; auto = the first whose detect() accepts --data")
    adapter_options: dict[str, Any] = Field(default_factory=dict, description="options passed to the adapter")
    bad_images: Literal["skip", "fail"] = Field("skip", description="unreadable images: skip (and list) or fail")
    strict: bool = Field(
        False,
        description="fail the run when groups or (near-)duplicate images leak across splits, a split lacks a "
        "class, or loading the data left out, merged or de-duplicated anything",
    )
    near_duplicate_distance: int | None = Field(
        4, ge=0, le=64, description="pHash bits that may differ for a near duplicate across splits (null = skip)"
    )
    val_fraction: float = Field(0.15, gt=0, lt=1, description="share of train carved out as val when none is given")
    folds: int = Field(
        0, ge=0, le=20, description="K >= 2: grouped K-fold CV on train+val, the K fold models used as one ensemble"
    )
    augmentation: str = Field("standard", description="augmentation pipeline for training (eval uses its eval mode)")
    augmentation_params: dict[str, Any] = Field(default_factory=dict)
    image_size: int | None = Field(
        None,
        ge=16,
        le=MAX_IMAGE_SIZE,
        description="input size in pixels; default: the pretrained config's",
    )
    crop_pct: float | None = Field(
        None,
        gt=0,
        le=1,
        description="eval centre crop: resize the short side to size/crop_pct, then crop; "
        "1.0 keeps the whole field of view; default: the pretrained config's",
    )
    # model
    backbone: str = Field(
        "tf_efficientnet_lite0",
        description="registered backbone, any timm model name, or a Hugging Face hub id (hf-hub:ORG/NAME)",
    )
    weights: str = Field("default", description="default | hub | none | path to a .safetensors/.pth file or folder")
    in_chans: int | None = Field(None, ge=1, description="input channels; default: the dataset's")
    head: str = Field("linear", description="classifier head (tl list heads)")
    head_params: dict[str, Any] = Field(default_factory=dict)
    drop_rate: float = Field(0.2, ge=0, lt=1, description="dropout before the classifier")
    drop_path_rate: float = Field(0.0, ge=0, lt=1, description="stochastic depth in the backbone")
    # feature extraction
    head_epochs: int = Field(100, ge=1, le=MAX_EPOCHS, description="epochs of torch-head training on cached features")
    feature_views: int = Field(
        0,
        ge=0,
        le=MAX_FEATURE_VIEWS,
        description="extra augmented views per training image in feature extraction",
    )
    # fine-tuning
    strategy: Strategy = Field("lp-ft", description="head-only | partial | full | gradual | lp-ft")
    freeze_stages: int = Field(0, ge=0, description="partial: number of leading stages kept frozen")
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="fine-tuning epochs")
    batch_size: int = Field(
        32,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="images per forward and backward pass, over all processes (an optimizer step takes "
        "grad_accumulation of these batches)",
    )
    grad_accumulation: int = Field(
        1,
        ge=1,
        le=MAX_GRAD_ACCUMULATION,
        description="fine-tuning: batches whose gradients add up to one optimizer step, so a step averages "
        "batch_size x this images in the memory of one batch (BatchNorm still normalises each batch alone)",
    )
    grad_clip: float | None = Field(
        None,
        gt=0,
        description="fine-tuning: clip the gradients' global L2 norm to this before each optimizer step "
        "(e.g. 1.0; null = off)",
    )
    lr: float = Field(1e-3, gt=0, description="learning rate of the head")
    backbone_lr_mult: float = Field(0.1, gt=0, description="backbone lr = lr * this (discriminative lr)")
    layer_decay: float | None = Field(None, gt=0, le=1, description="per-stage lr decay towards the input")
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(1.0, ge=0, le=MAX_EPOCHS, description="epochs of linear lr warm-up")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    ema: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="fine-tuning: exponential moving average of the weights with this decay (e.g. 0.998), warmed "
        "up over the first steps; val scores, checkpoints and the saved model use the averaged weights",
    )
    mixup: float = Field(0.0, ge=0, description="mixup alpha (0 = off)")
    cutmix: float = Field(0.0, ge=0, description="cutmix alpha (0 = off)")
    class_weights: Literal["none", "balanced"] = "none"
    balanced_sampling: bool = False
    unfreeze_every: int = Field(1, ge=1, le=MAX_EPOCHS, description="gradual: epochs between unfreezing the next stage")
    early_stopping: int = Field(
        0, ge=0, le=MAX_EPOCHS, description="stop after this many epochs without val improvement (0 = off)"
    )
    checkpoint: Literal["best", "last"] = Field(
        "best", description="keep the epoch with the best val monitor, or the last epoch of the schedule"
    )
    monitor: Literal["auto", "accuracy", "balanced_accuracy", "macro_f1", "auc", "map", "r2", "rmse", "loss"] = Field(
        "auto",
        description="val metric that picks the best epoch; auto = accuracy (classification), auc (multilabel), "
        "r2 (regression)",
    )
    loss: Literal["auto", "ce", "bce", "huber", "mse"] = Field(
        "auto",
        description="auto = ce (classification), bce (multilabel, NaN labels masked), huber (regression); "
        "regression also takes mse",
    )
    tta: bool = Field(False, description="fine-tuning: average predictions over the image and its mirror image")
    # evaluation
    shift_check: bool = Field(
        True,
        description="report how well pretrained features tell test (and val) images from train images "
        "(covariate shift); costs one feature pass over test in LP-FT runs",
    )
    stress_perturbations: list[str] = Field(
        default_factory=list,
        description="`tl stress`: plugin changes to run after the core's, e.g. [medical/bias-field] (a preset names "
        "its modality's; `tl list perturbations`)",
    )
    bootstrap: int = Field(
        1000,
        ge=0,
        le=MAX_BOOTSTRAP,
        description="resamples for 95% bootstrap intervals of test metrics (0 = off)",
    )
    operating_point: str = Field(
        "youden",
        pattern=OPERATING_POINT_RULE,
        description="two classes: threshold chosen on val, used on test: youden | sensitivity:0.95 | specificity:0.9",
    )
    positive_class: str | None = Field(None, description="two classes: the positive class (default: the second)")
    # experiment tracking
    loggers: list[str] = Field(
        default_factory=list,
        description="experiment trackers the run reports to, e.g. [mlflow,tensorboard] (tl list loggers): settings, "
        'metrics per epoch, final scores and the run\'s files; both need pip install "tlcore[tracking]"',
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="loggers=[mlflow]: tracking server or store, e.g. http://127.0.0.1:5000; default "
        "$MLFLOW_TRACKING_URI, else MLflow's own default (a local store in the working directory)",
    )
    mlflow_experiment: str = Field("tlcore", min_length=1, description="loggers=[mlflow]: the MLflow experiment")
    # runtime
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    num_workers: int | None = Field(None, ge=0, description="DataLoader workers; default 0 on CPU, most cores on GPU")
    compile: bool = Field(False, description="torch.compile the model for fine-tuning (pays off on GPUs)")
    precision: Precision = Field(
        "auto",
        description="arithmetic of training, feature extraction and scoring: auto = bf16 on GPUs with bf16 in "
        "hardware, fp16 with loss scaling on older CUDA GPUs, fp32 on CPU and MPS; bf16 | fp16 | fp32 force "
        "one (bf16 and fp16 also run on the CPU, faster only on CPUs with instructions for them)",
    )
    cache_dir: str | None = Field(None, description="feature cache; default ~/.cache/tlcore/features")
    decode_cache: bool = Field(
        True,
        description="fine-tuning: decode each image once into a memory-mapped uint8 cache, shrunk to "
        "decode_cache_size (used when the reader's output is uint8 and the disk has room)",
    )
    decode_cache_size: int | None = Field(
        None, ge=16, description="short side of cached images; default 1.5x the eval resize (384 px for 224 models)"
    )
    decode_cache_dir: str | None = Field(None, description="decoded-image cache; default ~/.cache/tlcore/decoded")
    progress: bool = True


def value_range(field: FieldInfo) -> str:
    """A field's bounds as an interval (``[16, 2048]``, ``(0, 1)``) or one side (``> 0``); "" when unbounded."""
    bounds = {
        name: getattr(item, name)
        for item in field.metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(item, name, None) is not None
    }
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds['gt']}" if "gt" in bounds else None
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds['lt']})" if "lt" in bounds else None
    if low and high:
        return f"{low}, {high}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f"{'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return ""


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``3e-4`` (no dot) as a string; users mean a number, also inside dicts."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in "eE.") else value
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def check_setting(key: str, source: str = "--set") -> None:
    """A one-line ConfigError, with the closest names, when ``key`` is no setting of a run (``source``: where
    the key was given, the start of the message)."""
    fields = RunConfig.model_fields
    if key not in fields:
        close = difflib.get_close_matches(key, list(fields), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"{source}: unknown key {key!r}", f"{hint}see `tl train --help`")


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are YAML (``lr=3e-4``, ``head_params={C: 2}``)."""
    out: dict[str, Any] = {}
    fields = RunConfig.model_fields
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r} is not key=value", "e.g. --set epochs=5")
        check_setting(key)
        try:
            value = _numbers(yaml.safe_load(raw)) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        # Strings that YAML reads as numbers/bools stay strings for str fields (backbone=resnet50 is fine).
        annotation = str(fields[key].annotation)
        if annotation in ("<class 'str'>", "str") and not isinstance(value, str):
            value = raw
        out[key] = value
    return out


def preset_settings(presets: Registry[Preset], name: str) -> dict[str, Any]:
    """The settings of a preset with its ``extends`` chain applied, base first."""
    chain: list[Preset] = []
    current: str | None = name
    while current is not None:
        if any(p.name == current for p in chain):
            raise ConfigError(f"preset {name!r} extends itself through {current!r}", "fix the plugin's extends")
        try:
            preset = presets.get(current)
        except UnknownNameError:
            if current == name:
                raise
            raise ConfigError(f"preset {chain[-1].name!r} extends unknown preset {current!r}") from None
        chain.append(preset)
        current = preset.extends
    settings: dict[str, Any] = {}
    for preset in reversed(chain):
        settings.update(preset.settings)
    return settings


def build_config(
    settings: Mapping[str, Any], overrides: Mapping[str, Any], source: str, override_source: str = "--set"
) -> RunConfig:
    """Validate preset settings plus overrides; errors name the key and where its value came from
    (``source`` for ``settings``, ``override_source`` for ``overrides``)."""
    merged = {**settings, **overrides}
    try:
        return RunConfig(**merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        origin = override_source if err["loc"] and err["loc"][0] in overrides else source
        raise ConfigError(
            f"{origin}: {key}: {err['msg']} (got {err.get('input')!r})",
            "`tl train --help` lists every key with its meaning and range",
        ) from None


def resolve_config(
    presets: Registry[Preset], preset: str | None, overrides: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> RunConfig:
    """The run configuration: ``base``, then the preset's settings, then ``overrides`` (``--set`` keys with
    their values), each key and value checked as ``--set`` checks them."""
    for key in overrides:
        check_setting(key)
    settings = dict(base or {})
    if preset:
        settings.update(preset_settings(presets, preset))
    return build_config(settings, overrides, f"preset {preset}" if preset else "config")
