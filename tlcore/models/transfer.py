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
from tlcore.models.backbones import Preprocessing, feature_dim, rebuild_backbone
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


def positive_proba(estimator: Any, x: np.ndarray) -> np.ndarray:
    """P(label = 1) from a binary classifier, also one that only ever saw one class."""
    classes = list(estimator.classes_)
    proba = np.asarray(estimator.predict_proba(x))
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(x))


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


#: What ``tl predict``/``evaluate``/``export`` say when a run's files do not fit together.
_EDITED = f"{MODEL_META} or {MODEL_FILE} was edited, damaged or copied from another run: restore both, or train again"
_PREPROCESSING_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct")


def _read_meta(path: Path) -> ModelMeta:
    """``model.json`` as a :class:`ModelMeta`; bad JSON, a missing key or a wrong type is one line."""
    from pydantic import TypeAdapter, ValidationError

    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TlcoreError(f"{path} is not valid JSON ({exc})", _EDITED) from None
    if not isinstance(saved, dict):
        raise TlcoreError(f"{path} holds a JSON {type(saved).__name__}, not an object", _EDITED)
    known = {f.name for f in fields(ModelMeta)}
    try:  # keys from newer versions are ignored
        meta = TypeAdapter(ModelMeta).validate_python({k: v for k, v in saved.items() if k in known})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        problem = f"{error['msg']} (got {error['input']!r:.60})"
        if error["type"] == "missing":
            problem = "required key is missing"
        raise TlcoreError(f"{path}: {where}: {problem}", _EDITED) from None
    missing = [key for key in _PREPROCESSING_KEYS if key not in meta.preprocessing]
    if missing or not meta.classes:
        what = f"preprocessing has no {missing[0]!r}" if missing else "classes is empty"
        raise TlcoreError(f"{path}: {what}", _EDITED)
    return meta


def _read_weights(path: Path, meta: ModelMeta) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``; a truncated file, or one trained on other classes, is one line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            saved_classes = (fh.metadata() or {}).get("classes")
            names = fh.keys()  # the handle itself is not iterable
            state = {key: fh.get_tensor(key) for key in names}
    except (SafetensorError, OSError) as exc:
        raise TlcoreError(
            f"{path} is damaged or truncated ({' '.join(str(exc).split())})",
            "restore it from a backup, or train the run again",
        ) from None
    try:
        trained_on = json.loads(saved_classes) if saved_classes else None
    except json.JSONDecodeError:
        trained_on = None  # metadata is informative only; the shapes below still check the file
    if isinstance(trained_on, list) and len(trained_on) != len(meta.classes):
        raise TlcoreError(
            f"{path.with_name(MODEL_META)} lists {len(meta.classes)} classes but {path.name} was trained on "
            f"{len(trained_on)} "
            f"({', '.join(map(str, trained_on[:5]))}{', ...' if len(trained_on) > 5 else ''})",
            _EDITED,
        )
    return state


def _check_weights_fit(model: nn.Module, state: dict[str, torch.Tensor], meta: ModelMeta, path: Path) -> None:
    """The saved tensors are exactly the ones the rebuilt architecture has, shape for shape."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key, value in expected.items() if key in state and state[key].shape != value.shape]
    if not (missing or unexpected or reshaped):
        return
    if reshaped:
        key = reshaped[0]
        problem = f"{key} is {tuple(state[key].shape)} in the file but {tuple(expected[key].shape)} in the model"
    elif missing:
        problem = f"{len(missing)} of the model's tensors are missing from the file, e.g. {missing[0]}"
    else:
        problem = f"the file holds {len(unexpected)} tensors the model lacks, e.g. {unexpected[0]}"
    raise TlcoreError(
        f"{path} does not fit the model {MODEL_META} describes (backbone {meta.backbone}, head {meta.head}, "
        f"{len(meta.classes)} classes): {problem}",
        _EDITED,
    )


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
    #: A backbone named by a Hugging Face hub id: the id, commit, weights file and sha256, and the
    #: architecture with its arguments and pretrained config, which rebuild it without the hub.
    hub: dict[str, Any] | None = None

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


def load_meta(run_dir: Path, finished: bool = True) -> ModelMeta:
    """``run_dir``'s model.json; ``finished=False`` is for the training run itself, which scores its model
    before it marks the run finished."""
    from tlcore.run_dirs import require_finished

    if finished:
        require_finished(run_dir)  # an interrupted run's model.json may be its old run's, or a half run's
    path = run_dir / MODEL_META
    if not path.exists():
        raise TlcoreError(f"{run_dir} holds no trained model ({MODEL_META} missing)", "pass the --output of `tl train`")
    return _read_meta(path)


def load_model(host: PluginHost, run_dir: Path, finished: bool = True) -> tuple[TransferModel, ModelMeta]:
    """Rebuild the architecture without downloading anything, then load the run's weights (``finished``:
    as :func:`load_meta`)."""
    meta = load_meta(run_dir, finished)
    if meta.members:
        return _load_ensemble(host, run_dir, meta)
    if not (run_dir / MODEL_FILE).exists():
        raise TlcoreError(f"{run_dir} has no {MODEL_FILE}: the run did not finish", "use tl train --resume")
    backbone = rebuild_backbone(host.backbone(meta.backbone), meta.in_chans, meta.hub)
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
    state = _read_weights(run_dir / MODEL_FILE, meta)
    _check_weights_fit(model, state, meta, run_dir / MODEL_FILE)
    model.load_state_dict(state)
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
