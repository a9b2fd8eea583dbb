"""The trained model (backbone + head) and how a run directory stores it.

``model.safetensors`` holds the weights and ``model.json`` everything needed to rebuild the
architecture and its preprocessing, so ``tl predict`` and ``tl evaluate`` never unpickle code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tlcore import io_atomic
from tlcore.data.dataset import UINT8_SCALE
from tlcore.errors import TlcoreError
from tlcore.models.backbones import Preprocessing, create_backbone, feature_dim
from tlcore.plugins import PluginHost
from tlcore.specs import HeadContext

MODEL_FILE = "model.safetensors"
MODEL_META = "model.json"
ESTIMATOR_FILE = "head.skops"  # a scikit-learn head with no torch equivalent (SVM), saved by the run


class TransferModel(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class EstimatorHead(nn.Module):
    """Fitted scikit-learn head(s) as a module, returning what the task's activation expects.

    One classifier: log-probabilities (softmax gives ``predict_proba``). A list of per-label binary
    classifiers (multilabel): logits (sigmoid gives each label's probability). A list of per-target
    regressors: their predictions (standardised units).
    """

    def __init__(self, estimator: Any, task: str = "classification") -> None:
        super().__init__()
        self.estimator = estimator
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.detach().float().cpu().numpy()
        if self.task == "regression":
            out = np.column_stack([np.asarray(e.predict(features), dtype=np.float64) for e in self.estimator])
            return torch.as_tensor(out, dtype=torch.float32).to(x.device)
        if self.task == "multilabel":
            from tlcore.train.probe import positive_proba

            p = np.column_stack([positive_proba(e, features) for e in self.estimator])
            p = np.clip(p, 1e-7, 1 - 1e-7)
            return torch.as_tensor(np.log(p / (1 - p)), dtype=torch.float32).to(x.device)
        proba = torch.as_tensor(self.estimator.predict_proba(features), dtype=torch.float32)
        return torch.log(proba.clamp_min(1e-12)).to(x.device)


def _load_estimator(run_dir: Path, task: str) -> EstimatorHead:
    """The run's scikit-learn head from skops (which refuses types it does not trust; no pickle)."""
    import skops.io as sio

    path = run_dir / ESTIMATOR_FILE
    if not path.exists():
        raise TlcoreError(f"{run_dir} has no {ESTIMATOR_FILE} for its scikit-learn head", "train the run again")
    try:
        return EstimatorHead(sio.load(path), task)
    except Exception as exc:
        raise TlcoreError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None


@dataclass
class ModelMeta:
    backbone: str
    timm_name: str
    in_chans: int
    head: str
    head_params: dict[str, Any]
    classes: list[str]
    task: str
    preprocessing: dict[str, Any]
    weights_origin: str
    tlcore_version: str
    tta: bool = False  # evaluate with mirrored views, as the run did
    #: Non-uint8 data: per-channel mean/std of the train split in the data's units (used instead of the
    #: pretrained mean/std), ``{"mean": [...], "std": [...], "images": n}``; None for uint8 images.
    input_stats: dict[str, Any] | None = None
    #: Regression: the train targets' mean/std; predictions are un-standardised with them.
    target_norm: dict[str, list[float]] | None = None
    loss: str | None = None
    #: The run these weights belong to (config.yaml and report.json carry the same id).
    run_id: str | None = None
    #: A fold ensemble (``tl train --folds K``): the member runs' folders, relative to this run's.
    members: list[str] | None = None

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...], float]:
        """Mean, std and their scale (255: 0-1 pretrained statistics on uint8 pixels; 1: raw band statistics)."""
        if self.input_stats:
            return tuple(self.input_stats["mean"]), tuple(self.input_stats["std"]), 1.0
        return tuple(self.preprocessing["mean"]), tuple(self.preprocessing["std"]), UINT8_SCALE

    def preprocess(self) -> Preprocessing:
        p = self.preprocessing
        return Preprocessing(
            (int(p["input_size"][0]), int(p["input_size"][1])),
            tuple(p["mean"]),
            tuple(p["std"]),
            p["interpolation"],
            p["crop_pct"],
        )


atomic_write_text = io_atomic.write_text  # the name run.py and plugins already use


def save_model(model: nn.Module, meta: ModelMeta, run_dir: Path, name: str = MODEL_FILE) -> None:
    metadata = {"classes": json.dumps(meta.classes), **({"run_id": meta.run_id} if meta.run_id else {})}
    io_atomic.save_safetensors(model.state_dict(), run_dir / name, metadata=metadata)
    io_atomic.write_text(run_dir / MODEL_META, json.dumps(asdict(meta), indent=2))


def load_meta(run_dir: Path) -> ModelMeta:
    from tlcore.run_dirs import require_finished

    require_finished(run_dir)  # an interrupted run's model.json may be its old run's, or a half run's
    path = run_dir / MODEL_META
    if not path.exists():
        raise TlcoreError(f"{run_dir} holds no trained model ({MODEL_META} missing)", "pass the --output of `tl train`")
    saved = json.loads(path.read_text())
    known = {f.name for f in fields(ModelMeta)}
    return ModelMeta(**{k: v for k, v in saved.items() if k in known})  # keys from newer versions are ignored


def load_model(host: PluginHost, run_dir: Path) -> tuple[TransferModel, ModelMeta]:
    """Rebuild the architecture without downloading anything, then load the run's weights."""
    from safetensors.torch import load_file

    meta = load_meta(run_dir)
    if meta.members:
        return _load_ensemble(host, run_dir, meta)
    if not (run_dir / MODEL_FILE).exists():
        raise TlcoreError(f"{run_dir} has no {MODEL_FILE}: the run did not finish", "use tl train --resume")
    backbone_spec = host.backbone(meta.backbone)
    backbone, _, _ = create_backbone(backbone_spec, weights="none", in_chans=meta.in_chans)
    head_spec = host.heads.get(meta.head)
    head: nn.Module
    if head_spec.kind == "sklearn":  # saved as nn.Identity in MODEL_FILE, the estimator beside it
        head = _load_estimator(run_dir, meta.task)
    else:
        head = head_spec.build(
            HeadContext(
                feature_dim(backbone),
                len(meta.classes),
                meta.task,  # type: ignore[arg-type]
                meta.head_params,
            )
        )
    model = TransferModel(backbone, head)
    model.load_state_dict(load_file(str(run_dir / MODEL_FILE)))
    model.eval()
    return model, meta


def _load_ensemble(host: PluginHost, run_dir: Path, meta: ModelMeta) -> tuple[Any, ModelMeta]:
    """The fold runs named in ``meta.members``, loaded one by one and averaged as one model."""
    from tlcore.models.ensemble import FoldEnsemble

    models, metas = [], []
    for member in meta.members or []:
        folder = (run_dir / member).resolve()
        if run_dir.resolve() not in folder.parents:  # model.json is data: it may not point outside its run
            raise TlcoreError(f"{run_dir / MODEL_META} names a member outside the run: {member}", "train it again")
        model, member_meta = load_model(host, folder)
        if member_meta.classes != meta.classes or member_meta.task != meta.task:
            raise TlcoreError(f"fold model {member} does not match {run_dir}'s classes or task", "train it again")
        models.append(model)
        metas.append(member_meta)
    ensemble = FoldEnsemble(models, metas, meta.task)
    ensemble.eval()
    return ensemble, meta
