"""Where pretrained weights come from: the hub, a local file, a weights package, or none.

Every local checkpoint is checked and converted once to safetensors in timm's naming, so the
model is always built through timm's own pretrained path (new head when the class count
differs, stem adapted when the channel count differs) and no pickle is ever executed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from tlcore import io_atomic
from tlcore.errors import WeightsError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def cache_root() -> Path:
    return Path(os.environ.get("TLCORE_CACHE", Path.home() / ".cache" / "tlcore"))


@dataclass(frozen=True)
class WeightsSource:
    """Resolved weights: ``kind`` is hub, file or none; ``file`` is a safetensors path for ``file``."""

    kind: str
    file: Path | None = None
    origin: str = ""  # what a report should say produced them
    #: A backbone named by a Hugging Face hub id: its id, commit, weights file and sha256, and the
    #: architecture with its arguments (tlcore.models.hub_models.record); None for timm registry names.
    hub: dict[str, Any] | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "none"


def sha256_of(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _find_in_folder(folder: Path) -> Path:
    candidates = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    preferred = [p for p in candidates if p.name in ("model.safetensors", "pytorch_model.bin")]
    if preferred or len(candidates) == 1:
        return (preferred or candidates)[0]
    if not candidates:
        raise WeightsError(f"no weights file ({', '.join(WEIGHT_SUFFIXES)}) in {folder}", "pass the file itself")
    names = ", ".join(p.name for p in candidates)
    raise WeightsError(f"several weights files in {folder}: {names}", "pass one file as weights=PATH")


def _load_untrusted(path: Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint without executing code: safetensors, or torch.load(weights_only=True)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError (a bad header), or a file cut short
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise WeightsError(
                f"{path.name} is not a readable safetensors file ({reason})", "download or export it again"
            ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"refusing to load {path.name}: it is not a plain tensor checkpoint ({type(exc).__name__})",
            "pickled checkpoints may carry code; convert it to safetensors where you trust it",
        ) from None
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def to_timm_safetensors(path: Path, timm_name: str, remap: bool = False) -> Path:
    """Check ``path`` against ``timm_name``'s architecture and cache it as safetensors in timm naming.

    ``remap`` maps keys by position (for checkpoints from other code bases whose tensors are in
    timm's order, such as the efficientnet_pytorch-style Lite checkpoints), via timm's own remapper.
    """
    import timm
    from timm.models import remap_state_dict

    if path.is_dir():
        path = _find_in_folder(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist", "check the path, or use weights=hub|none")
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", timm_name)  # a hub id (hf-hub:ORG/NAME@REV) as one file name
    out = cache_root() / "weights" / f"{safe_name}-{sha256_of(path)[:16]}.safetensors"
    if out.exists():
        return out
    state = _load_untrusted(path)
    with torch.random.fork_rng(devices=[]):  # a first-time conversion must not move the run's random stream
        reference = timm.create_model(timm_name, pretrained=False)
    if remap:
        try:
            state = remap_state_dict(state, reference)
        except AssertionError as exc:
            raise WeightsError(f"{path.name} does not fit {timm_name}: {exc}") from None
    expected = reference.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    classifier = cast(dict[str, Any], reference.pretrained_cfg).get("classifier", "")
    # A checkpoint with a different head (fine-tuned elsewhere) is fine: timm replaces the head.
    body_missing = [k for k in missing if not k.startswith(str(classifier))]
    body_wrong = [k for k in wrong if not k.startswith(str(classifier))]
    if body_missing or body_wrong:
        example = (body_missing or body_wrong)[0]
        raise WeightsError(
            f"{path.name} does not fit architecture {timm_name} "
            f"({len(body_missing)} missing and {len(body_wrong)} mis-shaped tensors, e.g. {example})",
            "pick the backbone these weights were trained for",
        )
    state = {k: v.contiguous() for k, v in state.items() if k in expected and k not in wrong}
    out.parent.mkdir(parents=True, exist_ok=True)
    io_atomic.save_safetensors(state, out)
    return out


def resolve_weights(
    setting: str,
    timm_name: str,
    default_kind: str,
    package_file: Callable[[], Path] | None,
) -> WeightsSource:
    """Turn a ``weights=`` setting into a :class:`WeightsSource`."""
    kind = default_kind if setting == "default" else setting
    if kind == "none":
        return WeightsSource("none", origin="random initialisation (no pretrained weights)")
    if kind == "hub":
        return WeightsSource("hub", origin=f"timm hub: {timm_name}")
    if kind == "file":
        if package_file is None:
            raise WeightsError(f"backbone {timm_name} has no offline weights file", "use weights=hub|none|PATH")
        source = package_file()
        return WeightsSource("file", to_timm_safetensors(source, timm_name, remap=True), origin=f"file: {source}")
    path = Path(kind).expanduser()
    if not path.exists():
        raise WeightsError(
            f"weights {kind!r} is neither default/hub/none nor an existing file or folder",
            "pass weights=hub, weights=none or a path to a .safetensors/.pth file",
        )
    return WeightsSource("file", to_timm_safetensors(path, timm_name), origin=f"file: {path.resolve()}")
