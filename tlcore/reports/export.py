"""Export a trained run to ONNX or TorchScript, and check the export predicts what PyTorch predicts.

The exported model takes what any image library produces after resizing and centre-cropping to the
run's input size: float32 ``N x C x H x W`` pixels in the run's units (0-255 for images). It applies
the run's normalisation, the model, the mirrored view when the run evaluated with one, and the output
activation, and returns class probabilities (softmax), label probabilities (sigmoid) or regression
values in the targets' units. ``<output>.json`` beside it records the classes and the preprocessing.

ONNX needs the ``export`` extra (onnx, onnxscript for torch's exporter, onnxruntime for the check); TorchScript
needs nothing beyond torch.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tlcore import io_atomic
from tlcore.errors import TlcoreError
from tlcore.extras import require
from tlcore.metrics.multilabel import THRESHOLD
from tlcore.models.transfer import EstimatorHead, ModelMeta, TransferModel
from tlcore.reports.explain import ModelInputs
from tlcore.reports.predictions import PREDICTIONS, read_predictions
from tlcore.reports.run_dir import REPORT, task_and_classes

Format = Literal["onnx", "torchscript"]
SUFFIX: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}
#: Largest allowed difference between the exported model's outputs and PyTorch's (float32 on CPU).
TOLERANCE = 1e-4


class Deployable(nn.Module):
    """Pixels in, probabilities (or values) out: everything a run does between a decoded image and its answer."""

    mean: torch.Tensor
    std: torch.Tensor
    target_mean: torch.Tensor
    target_std: torch.Tensor

    def __init__(self, model: TransferModel, meta: ModelMeta, inputs: ModelInputs) -> None:
        super().__init__()
        self.model = model
        self.task = meta.task
        self.tta = bool(meta.tta)
        self.register_buffer("mean", inputs.mean.clone())
        self.register_buffer("std", inputs.std.clone())
        norm = meta.target_norm  # regression: predictions back in the targets' units
        k = len(meta.classes)
        self.register_buffer("target_mean", torch.tensor(norm["mean"] if norm else [0.0] * k, dtype=torch.float32))
        self.register_buffer("target_std", torch.tensor(norm["std"] if norm else [1.0] * k, dtype=torch.float32))

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return torch.softmax(logits, dim=1)
        if self.task == "multilabel":
            return torch.sigmoid(logits)
        return logits

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.mean) / self.std
        out = self._activate(self.model(x))
        if self.tta:
            out = (out + self._activate(self.model(torch.flip(x, dims=[3])))) / 2
        if self.task == "regression":
            out = out * self.target_std + self.target_mean
        return out


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float
    same_decisions: bool
    checked_on: str  # what the parity batch was made of
    batch: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.path),
            "format": self.format,
            "max_abs_diff": self.max_abs_diff,
            "same_predictions": self.same_decisions,
            "checked_on": self.checked_on,
            "batch": self.batch,
            "tolerance": TOLERANCE,
        }


def require_format(fmt: str) -> None:
    """One line naming the ``export`` extra when ``fmt`` needs a package that is not installed: ONNX needs the
    model format, torch.onnx's exporter (dynamo=True) and the runtime that checks the export."""
    if fmt == "onnx":
        feature = "tl export --format onnx"
        require("onnx", "export", feature)
        require("onnxscript", "export", feature)
        require("onnxruntime", "export", feature)


def check_exportable(meta: ModelMeta, model: TransferModel) -> None:
    from tlcore.models.ensemble import members_of

    if any(isinstance(getattr(m, "head", None), EstimatorHead) for m in members_of(model)):
        raise TlcoreError(
            f"the run's {meta.head!r} head is a scikit-learn estimator, which cannot be exported to ONNX or "
            "TorchScript together with the backbone",
            "train with head=linear, mlp or logistic-regression (saved as a linear layer), or export "
            "the backbone features with `tl extract`",
        )


def recorded_test_images(run_dir: Path) -> list[str]:
    """The test images the run recorded in its predictions file, for the parity check; none when the run
    has no readable record of them (the check then runs on seeded noise)."""
    report_path = run_dir / REPORT
    if not ((run_dir / PREDICTIONS).is_file() and report_path.is_file()):
        return []
    task, classes = task_and_classes(json.loads(report_path.read_text()))
    try:
        split = read_predictions(run_dir / PREDICTIONS, task, classes).get("test")
    except TlcoreError:
        return []
    return split.paths if split is not None else []


def parity_batch(
    inputs: ModelInputs, image_paths: Sequence[str], size: tuple[int, int], n: int = 8
) -> tuple[torch.Tensor, str]:
    """Up to ``n`` real images (the run's test images when they are still there), else seeded noise."""
    images: list[np.ndarray] = []
    for path in image_paths:
        if len(images) == n:
            break
        try:
            images.append(inputs.read(path))
        except Exception:  # moved or unreadable: the check still runs on what is there
            continue
    if images:
        return inputs.batch(images), f"{len(images)} test image(s)"
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(n, inputs.channels, *size, generator=generator) * float(inputs.scale)
    return noise, f"{n} random image(s) (the run's test images were not found)"


def _export_onnx(module: Deployable, example: torch.Tensor, path: Path) -> None:
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about deprecated internals
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["pixels"],
            output_names=["outputs"],
            dynamic_shapes={"pixels": {0: torch.export.Dim("batch", min=1, max=4096)}},
            verbose=False,
        )
    assert program is not None
    model = program.model_proto
    onnx.checker.check_model(model)
    io_atomic.atomic_write(path, lambda tmp: onnx.save(model, str(tmp)))


def _run_onnx(path: Path, batch: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0])


def _export_torchscript(module: Deployable, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in favour of torch.export
        traced = torch.jit.trace(module, example, check_trace=False)
    buffer = io.BytesIO()  # torch.jit.save reports a file it cannot write as a RuntimeError: write it here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(traced, buffer)
    io_atomic.write_bytes(path, buffer.getvalue())


def _run_torchscript(path: Path, batch: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return np.asarray(loaded(batch).numpy())


def _decisions(task: str, outputs: np.ndarray) -> np.ndarray:
    if task == "classification":
        return outputs.argmax(axis=1)
    if task == "multilabel":
        return outputs >= THRESHOLD
    return outputs.round(3)


def export_model(
    model: TransferModel,
    meta: ModelMeta,
    fmt: Format,
    output: Path,
    image_paths: Sequence[str] = (),
    reader: Callable[[str], np.ndarray] | None = None,
) -> ExportResult:
    """Write ``output`` (+ ``output.json``), reload it, and compare it with PyTorch on one batch of
    ``image_paths`` read by ``reader`` (the run's adapter's; default the generic one)."""
    require_format(fmt)
    check_exportable(meta, model)
    inputs = ModelInputs(meta, reader)
    module = Deployable(model, meta, inputs).eval()
    size = meta.preprocess().input_size
    batch, checked_on = parity_batch(inputs, image_paths, size)
    io_atomic.ensure_dir(output.parent)
    with torch.no_grad():
        expected = module(batch).numpy()
        if fmt == "onnx":
            _export_onnx(module, batch, output)
        else:
            _export_torchscript(module, batch, output)
    got = _run_onnx(output, batch) if fmt == "onnx" else _run_torchscript(output, batch)
    if got.shape != expected.shape:
        raise TlcoreError(f"the exported model returns shape {got.shape}, PyTorch {expected.shape}")
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    same = bool(np.array_equal(_decisions(meta.task, got), _decisions(meta.task, expected)))
    result = ExportResult(output, fmt, diff, same, checked_on, len(batch))
    pre = meta.preprocess()
    sidecar = {
        "format": fmt,
        "input": {
            "name": "pixels",
            "shape": ["batch", meta.in_chans, *pre.input_size],
            "dtype": "float32",
            "units": "0-255 pixel values" if inputs.scale == 255.0 else "the data's own units",
            "preprocessing": "resize the short side to input_size / crop_pct, then centre-crop to input_size",
            "interpolation": pre.interpolation,
            "crop_pct": pre.crop_pct,
        },
        "output": {
            "name": "outputs",
            "meaning": {
                "classification": "class probabilities (softmax)",
                "multilabel": "label probabilities (sigmoid)",
                "regression": "predicted values in the targets' units",
            }.get(meta.task, meta.task),
            "classes": meta.classes,
        },
        "mirrored_view_averaged": bool(meta.tta),
        "backbone": meta.backbone,
        "weights_origin": meta.weights_origin,
        "task": meta.task,
        "parity": result.as_dict(),
    }
    io_atomic.write_text(Path(f"{output}.json"), json.dumps(sidecar, indent=2))
    # Absolute for probabilities; relative to the values' size for regression targets in large units.
    scale = max(1.0, float(np.max(np.abs(expected)))) if meta.task == "regression" and expected.size else 1.0
    if diff > TOLERANCE * scale or not same:
        raise TlcoreError(
            f"the exported model differs from PyTorch: max abs diff {diff:.3g} (tolerance {TOLERANCE:g}), "
            f"same predictions: {same}",
            "try the other --format, and report the model and tlcore version",
        )
    return result


def export_run(host: Any, run_dir: Path, fmt: Format = "onnx", output: Path | None = None) -> ExportResult:
    """``tl export``: the run's model as ONNX or TorchScript (default ``RUN_DIR/model.onnx`` or ``model.pt``),
    exported on the CPU and checked against PyTorch on the run's test images, read as the run read them."""
    from tlcore.predict import Predictor

    require_format(fmt)  # before the model loads
    predictor = Predictor.load(host, run_dir, device=torch.device("cpu"))
    model, meta = predictor.model, predictor.meta
    check_exportable(meta, model)
    output = output or run_dir / f"model{SUFFIX[fmt]}"
    io_atomic.check_writable(output.parent)  # a read-only folder fails now, in one line, not after the export
    test_images = recorded_test_images(run_dir)
    # The run's adapter reads them (a DICOM windowed, a volume's slice).
    reader = predictor.reader_for(host, test_images[:8]) if test_images else None
    return export_model(model, meta, fmt, output, test_images, reader)
