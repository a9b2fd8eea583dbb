"""The trained model (backbone + head) and how a run directory stores it.

``model.safetensors`` holds the weights and ``model.json`` everything needed to rebuild the
architecture and its preprocessing, so ``tl predict`` and ``tl evaluate`` never unpickle code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tlcore import io_atomic
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
    """A fitted scikit-learn head as a module: returns log-probabilities, so softmax gives ``predict_proba``."""

    def __init__(self, estimator: Any) -> None:
        super().__init__()
        self.estimator = estimator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proba = torch.as_tensor(self.estimator.predict_proba(x.detach().float().cpu().numpy()), dtype=torch.float32)
        return torch.log(proba.clamp_min(1e-12)).to(x.device)


def _load_estimator(run_dir: Path) -> EstimatorHead:
    """The run's scikit-learn head from skops (which refuses types it does not trust; no pickle)."""
    import skops.io as sio

    path = run_dir / ESTIMATOR_FILE
    if not path.exists():
        raise TlcoreError(f"{run_dir} has no {ESTIMATOR_FILE} for its scikit-learn head", "train the run again")
    try:
        return EstimatorHead(sio.load(path))
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
    io_atomic.save_safetensors(model.state_dict(), run_dir / name, metadata={"classes": json.dumps(meta.classes)})
    io_atomic.write_text(run_dir / MODEL_META, json.dumps(asdict(meta), indent=2))


def load_meta(run_dir: Path) -> ModelMeta:
    path = run_dir / MODEL_META
    if not path.exists():
        raise TlcoreError(f"{run_dir} holds no trained model ({MODEL_META} missing)", "pass the --output of `tl train`")
    return ModelMeta(**json.loads(path.read_text()))


def load_model(host: PluginHost, run_dir: Path) -> tuple[TransferModel, ModelMeta]:
    """Rebuild the architecture without downloading anything, then load the run's weights."""
    from safetensors.torch import load_file

    meta = load_meta(run_dir)
    if not (run_dir / MODEL_FILE).exists():
        raise TlcoreError(f"{run_dir} has no {MODEL_FILE}: the run did not finish", "use tl train --resume")
    backbone_spec = host.backbone(meta.backbone)
    backbone, _, _ = create_backbone(backbone_spec, weights="none", in_chans=meta.in_chans)
    head_spec = host.heads.get(meta.head)
    head: nn.Module
    if head_spec.kind == "sklearn":  # saved as nn.Identity in MODEL_FILE, the estimator beside it
        head = _load_estimator(run_dir)
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
