"""Grad-CAM heatmaps (the ``grad-cam`` package, in the ``reports`` extra) for a trained run: where in the image
the model looked.

The target layer is found without a per-architecture table: one forward and backward pass on a
blank image, then the last layer whose output is a spatial map that the prediction depends on
(non-zero gradient). For CNNs that is a 4-D ``N x C x H x W`` map (the last conv stage); for vision
transformers (timm models with prefix tokens) a ``N x tokens x C`` sequence of the model's width,
which a reshape transform turns back into a patch grid.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tlcore.errors import TlcoreError
from tlcore.extras import require
from tlcore.models.transfer import EstimatorHead, ModelMeta, TransferModel

#: Images explained per Grad-CAM pass (bounded memory: activations and gradients of one layer).
BATCH = 16
#: The smallest side, in pixels, of a written overlay (small inputs are scaled up to be visible).
MIN_DISPLAY = 224


@dataclass(frozen=True)
class CamLayer:
    """The layer Grad-CAM reads, by its name in the model, with the reshape transform it needs."""

    name: str
    module: nn.Module
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class Explanation:
    path: str
    image: np.ndarray  # HxWx3 float32 in [0, 1]: the model's view of the image (resized, cropped)
    heatmap: np.ndarray  # HxW float32 in [0, 1]
    target: int  # the class / label / output index explained
    outputs: np.ndarray  # the model's activated outputs for this image (probabilities or values)

    @property
    def blank(self) -> bool:
        """Grad-CAM keeps only positive evidence: a map that is zero everywhere means no region of the
        layer raised this output (it can still be the top class, by lowering the others more)."""
        return bool(self.heatmap.max() <= 0)


class TokenGrid:
    """``N x (prefix + h*w) x C`` tokens -> ``N x C x h x w`` map (for Grad-CAM on vision transformers)."""

    def __init__(self, prefix: int, height: int, width: int) -> None:
        self.prefix, self.height, self.width = prefix, height, width

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, self.prefix :, :].reshape(tokens.size(0), self.height, self.width, tokens.size(2))
        return grid.permute(0, 3, 1, 2)


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """``N x H x W x C`` -> ``N x C x H x W`` (timm models with ``output_fmt == "NHWC"``, such as Swin)."""
    return x.permute(0, 3, 1, 2)


def _token_grid(backbone: nn.Module, shape: torch.Size) -> TokenGrid | None:
    """A :class:`TokenGrid` for a ``N x T x C`` output of a token model, or None when ``T`` is no patch grid."""
    prefix = int(getattr(backbone, "num_prefix_tokens", 0))
    tokens = shape[1] - prefix
    grid = getattr(getattr(backbone, "patch_embed", None), "grid_size", None)
    if grid is not None and int(grid[0]) * int(grid[1]) == tokens:
        return TokenGrid(prefix, int(grid[0]), int(grid[1]))
    side = math.isqrt(tokens) if tokens > 0 else 0
    return TokenGrid(prefix, side, side) if side > 1 and side * side == tokens else None


def find_cam_layer(model: TransferModel, example: torch.Tensor) -> CamLayer:
    """The last spatial feature map of ``model.backbone`` that the outputs depend on."""
    backbone = model.backbone
    width = int(getattr(backbone, "num_features", 0) or 0)
    token_model = hasattr(backbone, "num_prefix_tokens") and hasattr(backbone, "patch_embed")
    nhwc = str(getattr(backbone, "output_fmt", "NCHW")) == "NHWC"
    h, w = (1, 2) if nhwc else (2, 3)
    seen: list[tuple[str, nn.Module, torch.Tensor]] = []

    def record(name: str, module: nn.Module) -> Callable[..., None]:
        def hook(_: nn.Module, __: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor) or not output.requires_grad:
                return
            if token_model:
                usable = output.ndim == 3 and output.size(2) == width and bool(_token_grid(backbone, output.shape))
            else:
                usable = output.ndim == 4 and output.size(h) > 1 and output.size(w) > 1
            if usable:
                output.retain_grad()
                seen.append((name, module, output))

        return hook

    handles = [m.register_forward_hook(record(n, m)) for n, m in backbone.named_modules() if n]
    try:
        with torch.enable_grad():
            out = model(example.requires_grad_(True))
            # A random mix of every output: one output alone can be constant (a binary logistic head folded
            # into logits [0, z]), and their plain sum too (multinomial logits that sum to zero).
            mix = torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(1))
            (out * mix).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
    for name, module, output in reversed(seen):
        grad = output.grad
        if token_model:
            grad = grad[:, int(getattr(backbone, "num_prefix_tokens", 0)) :] if grad is not None else None
        if grad is not None and bool(grad.abs().sum() > 0):
            reshape = _token_grid(backbone, output.shape) if token_model else (channels_first if nhwc else None)
            return CamLayer(f"backbone.{name}", module, reshape)
    raise TlcoreError(
        f"no layer for Grad-CAM found in {type(backbone).__name__}: it has no spatial feature map "
        "(N x C x H x W, or N x tokens x C of a vision transformer) that its prediction depends on",
        "Grad-CAM works with timm CNNs and ViTs; use a larger image_size if the last map is 1x1",
    )


def activate(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Logits -> class probabilities, label probabilities, or (regression) the raw standardised output."""
    if task == "classification":
        return torch.softmax(logits.float(), dim=1)
    if task == "multilabel":
        return torch.sigmoid(logits.float())
    return logits.float()


class ModelInputs:
    """Images as a run's model sees them (tlcore.predict.InputView): read by ``reader`` (the run's adapter's
    for new files; default the generic one), then the run's eval view; normalised as a batch."""

    def __init__(self, meta: ModelMeta, reader: Callable[[str], np.ndarray] | None = None) -> None:
        from tlcore.predict import InputView, generic_reader

        self.view = InputView.of(meta)
        self.reader = reader or generic_reader(meta.in_chans)
        self.channels = meta.in_chans
        self.transform = self.view.transform
        self.mean = torch.tensor(self.view.mean, dtype=torch.float32).view(1, -1, 1, 1) * self.view.scale
        self.std = torch.tensor(self.view.std, dtype=torch.float32).view(1, -1, 1, 1) * self.view.scale
        self.scale = self.view.scale

    def read(self, path: str) -> np.ndarray:
        """``path`` read and transformed to the model's input size, ``HxWxC`` (uint8 for images, float32
        for bands)."""
        return self.view.read(self.reader, path)

    def batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Unnormalised ``N x C x H x W`` float32, in the data's units (0-255 for images)."""
        return torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in images])).permute(0, 3, 1, 2)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def display_rgb(image: np.ndarray) -> np.ndarray:
    """``HxWxC`` model input -> ``HxWx3`` float32 in [0, 1] for display (grey and bands as grey)."""
    if image.dtype == np.uint8:
        array = image.astype(np.float32) / 255.0
    else:  # raw units: stretched to their own range
        array = np.asarray(image, dtype=np.float32)
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        array = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    if array.shape[2] != 3:
        array = np.repeat(array.mean(axis=2, keepdims=True), 3, axis=2)
    return np.nan_to_num(array).clip(0.0, 1.0)


def _gradients_only_from(model: TransferModel, layer: nn.Module) -> None:
    """Grad-CAM needs gradients at ``layer`` and after it, never before: with every other backbone parameter
    frozen, the backward pass stops at the layer instead of running down to the input (several times faster)."""
    own = list(layer.parameters())
    if not own:  # a parameter-free layer (an activation): its output needs the earlier parameters' graph
        return
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    for p in own:
        p.requires_grad_(True)


def require_grad_cam(feature: str = "Grad-CAM") -> None:
    """The one-line :class:`~tlcore.errors.MissingExtraError` naming the ``reports`` extra without grad-cam."""
    require("pytorch_grad_cam", "reports", feature)


class Explainer:
    """Grad-CAM for one trained run; the target layer is found once, on first use."""

    def __init__(
        self, model: TransferModel, meta: ModelMeta, reader: Callable[[str], np.ndarray] | None = None
    ) -> None:
        from tlcore.models.ensemble import members_of

        require_grad_cam()
        self.members = members_of(model)  # a fold ensemble's heatmap averages each member's at its own layer
        if any(isinstance(getattr(m, "head", None), EstimatorHead) for m in self.members):
            raise TlcoreError(
                f"Grad-CAM needs gradients through the head, and the run's {meta.head!r} head is a "
                "scikit-learn estimator",
                "train with head=linear, mlp or logistic-regression (saved as a linear layer)",
            )
        self.model, self.meta = model.eval(), meta
        self.inputs = ModelInputs(meta, reader)
        self._layers: list[CamLayer] = []

    @property
    def layers(self) -> list[CamLayer]:
        """The Grad-CAM layer of each single model (one, or one per fold model of an ensemble)."""
        if not self._layers:
            h, w = self.meta.preprocess().input_size
            # Random, not blank: a constant image can leave ReLU paths (and their gradients) all zero.
            example = torch.randn(1, self.meta.in_chans, h, w, generator=torch.Generator().manual_seed(0))
            for member in self.members:
                layer = find_cam_layer(member, example)  # type: ignore[arg-type]
                _gradients_only_from(member, layer.module)  # type: ignore[arg-type]
                self._layers.append(layer)
        return self._layers

    @property
    def layer(self) -> CamLayer:
        """The layer named in reports (a fold ensemble uses the same one in each of its models)."""
        first = self.layers[0]
        if len(self.layers) == 1:
            return first
        return CamLayer(f"{first.name} of each of the {len(self.layers)} fold models", first.module, first.reshape)

    def explain(self, paths: Sequence[str], targets: Sequence[int | None]) -> list[Explanation]:
        """Heatmaps of ``paths``; ``targets[i]`` is the output to explain (None: the predicted class)."""
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        layers = self.layers
        out: list[Explanation] = []
        modules = [layer.module for layer in layers]
        with GradCAM(model=self.model, target_layers=modules, reshape_transform=layers[0].reshape) as cam:
            for start in range(0, len(paths), BATCH):
                chunk = list(paths[start : start + BATCH])
                images = [self.inputs.read(p) for p in chunk]
                x = self.inputs.normalise(self.inputs.batch(images))
                with torch.no_grad():
                    outputs = activate(self.meta.task, self.model(x)).numpy()
                chosen = [
                    int(t) if t is not None else int(outputs[i].argmax())
                    for i, t in enumerate(targets[start : start + BATCH])
                ]
                maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in chosen])
                for i, path in enumerate(chunk):
                    out.append(Explanation(path, display_rgb(images[i]), maps[i], chosen[i], outputs[i]))
        return out


def overlay(explanation: Explanation, alpha: float = 0.45) -> np.ndarray:
    """The heatmap blended over the image, ``HxWx3`` uint8 (jet colour map, red = most important)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return np.asarray(show_cam_on_image(explanation.image, explanation.heatmap, use_rgb=True, image_weight=1 - alpha))


def side_by_side(explanation: Explanation, caption: str, min_side: int = MIN_DISPLAY) -> Any:
    """A PIL image: the model's view of the image next to its Grad-CAM overlay, captioned underneath."""
    from PIL import Image, ImageDraw, ImageFont

    left = Image.fromarray((explanation.image * 255).round().astype(np.uint8))
    right = Image.fromarray(overlay(explanation))
    factor = max(1.0, min_side / min(left.size))
    size = (round(left.width * factor), round(left.height * factor))
    left, right = left.resize(size, Image.Resampling.BICUBIC), right.resize(size, Image.Resampling.BICUBIC)
    font = ImageFont.load_default(size=max(12, size[1] // 16))
    line_height = int(font.getbbox("Ag")[3]) + 6
    lines = caption.splitlines()
    gap = 6
    strip = line_height * len(lines) + 6 if lines else 0
    canvas = Image.new("RGB", (size[0] * 2 + gap, size[1] + strip), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (size[0] + gap, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(lines):
        draw.text((4, size[1] + 3 + i * line_height), text, fill="black", font=font)
    return canvas


def png_bytes(image: Any, format: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def describe(meta: ModelMeta, explanation: Explanation) -> str:
    """What the heatmap explains, in words: ``'healthy' (p=0.93)``, or a regression output."""
    name = meta.classes[explanation.target] if explanation.target < len(meta.classes) else str(explanation.target)
    value = float(explanation.outputs[explanation.target])
    if meta.task == "regression":
        return f"output {name} (standardised {value:.3g})"
    return f"{name!r} (p={value:.2f})"


def display_name(path: str) -> str:
    """A file's name, or ``NAME::MEMBER`` for a member address (a volume's slice)."""
    from tlcore.specs import source_file

    source = source_file(path)
    return Path(source).name + (path[len(source) :] if source != path else "")


def _stem(path: str) -> str:
    """A file-name stem for an overlay: ``scan`` for ``scan.png``, ``brain_12`` for ``brain.nii.gz::12``."""
    from tlcore.specs import source_file

    source = source_file(path)
    if source == path:
        return Path(path).stem
    member = re.sub(r"[^\w.-]+", "-", path[len(source) :].lstrip(":"))
    return f"{Path(source).name.split('.')[0]}_{member}"


def write_overlays(
    explainer: Explainer, images: Sequence[str], output: Path, target: int | None = None
) -> list[dict[str, Any]]:
    """One ``<stem>_gradcam.png`` per image in ``output``; returns what was written, one dict per image."""
    output.mkdir(parents=True, exist_ok=True)
    rows, used = [], set()
    for explanation in explainer.explain(images, [target] * len(images)):
        stem = _stem(explanation.path)
        name, n = f"{stem}_gradcam.png", 1
        while name in used:
            n += 1
            name = f"{stem}_{n}_gradcam.png"
        used.add(name)
        text = describe(explainer.meta, explanation)
        caption = f"{display_name(explanation.path)}: Grad-CAM for {text}"
        if explanation.blank:
            caption += "\nno region raised this output (blank map)"
        side_by_side(explanation, caption).save(output / name)
        rows.append(
            {
                "image": explanation.path,
                "explained": explainer.meta.classes[explanation.target],
                "output": round(float(explanation.outputs[explanation.target]), 6),
                "overlay": str(output / name),
                "layer": explainer.layer.name,
                "blank": explanation.blank,
            }
        )
    return rows


def explain_run(
    host: Any, run_dir: Path, images: Sequence[str | Path], output: Path | None = None, class_name: str | None = None
) -> list[dict[str, Any]]:
    """``tl explain``: a Grad-CAM overlay per image in ``output`` (default ``RUN_DIR/explanations``), for
    ``class_name`` or else the predicted class; files are read as ``tl predict`` reads them. Runs on the CPU.
    Returns one dict per image (see :func:`write_overlays`)."""
    from tlcore.predict import Predictor
    from tlcore.runtime import warn

    require_grad_cam("tl explain")  # before the model loads
    predictor = Predictor.load(host, run_dir, device=torch.device("cpu"))
    inputs, warning = predictor.read_files(host, images)
    if warning:
        warn(warning)
    meta = predictor.meta
    target = None
    if class_name is not None:
        if class_name not in meta.classes:
            raise TlcoreError(f"unknown class {class_name!r}", f"the run's classes: {', '.join(meta.classes)}")
        target = meta.classes.index(class_name)
    explainer = Explainer(predictor.model, meta, inputs.reader)
    return write_overlays(explainer, inputs.items, output or run_dir / "explanations", target)
