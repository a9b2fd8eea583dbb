"""Backbones named by a Hugging Face hub id: ``hf-hub:ORG/NAME[@REVISION]`` (or ``timm/NAME``).

Such a repository holds a timm model as published: ``config.json`` (the timm architecture, its
arguments and preprocessing) and its weights (``model.safetensors`` or ``pytorch_model.bin``).
tlcore resolves the id once to the commit the hub (or the local hub cache) has for it and builds
the model from that pinned revision through timm's own ``hf-hub:`` path, so the config and the
weights always come from one revision. What a run records (:func:`record`: the id, the commit,
the weights file and its sha256, the architecture and its arguments) rebuilds the architecture
later without the hub (:func:`rebuild`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from tlcore.errors import ConfigError, WeightsError

HUB_PREFIXES = ("hf-hub:", "hf_hub:")  # timm's source prefix, and its older spelling
TIMM_ORG = "timm/"  # timm's own organisation on the hub: timm/NAME.TAG needs no prefix
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_FORM = "hf-hub:ORG/NAME, hf-hub:ORG/NAME@REVISION or timm/NAME"


def hub_part(name: str) -> str | None:
    """What follows the hub prefix when ``name`` names a hub model (``ORG/NAME[@REVISION]``, not checked
    yet: :func:`hub_model_id`), else None (a timm registry name)."""
    lowered = name.lower()
    prefix = next((p for p in HUB_PREFIXES if lowered.startswith(p)), None)
    if prefix is not None:
        return name[len(prefix) :]
    return name if name.startswith(TIMM_ORG) else None


def is_hub_name(name: str) -> bool:
    """Whether ``name`` (a backbone's ``timm_name``) is a hub model id rather than a timm registry name."""
    return hub_part(name) is not None


def hub_model_id(name: str) -> str:
    """``ORG/NAME[@REVISION]`` of a hub model name; a malformed one is a one-line error."""
    model_id = hub_part(name) or ""
    repo_id, at, revision = model_id.partition("@")
    if not _REPO_ID.fullmatch(repo_id) or (at and not revision) or "@" in revision:
        raise ConfigError(f"{name!r} is not a Hugging Face hub model id", f"write {_FORM}")
    return model_id


@dataclass(frozen=True)
class HubModel:
    """A hub model's ``config.json``, at the commit its id resolved to."""

    model_id: str  # as asked: ORG/NAME[@REVISION]
    repo_id: str
    commit: str
    architecture: str
    model_args: dict[str, Any]
    pretrained_cfg: dict[str, Any]

    @property
    def pinned(self) -> str:
        """The name timm builds it from: this exact commit, whatever the branch says later."""
        return f"hf-hub:{self.repo_id}@{self.commit}"


def _cache_folder() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _error_names(exc: BaseException) -> set[str]:
    """The exception's class names: huggingface_hub has moved its error classes between versions."""
    return {cls.__name__ for cls in type(exc).__mro__}


def hub_error(model_id: str, exc: BaseException) -> WeightsError | None:
    """The one-line error for a hub failure while fetching ``model_id``, or None when it is not one."""
    names = _error_names(exc)
    repo_id = model_id.partition("@")[0]
    if "GatedRepoError" in names or "RepositoryNotFoundError" in names:
        return WeightsError(
            f"no Hugging Face hub model {repo_id} (or it is private or gated)",
            "check the id; for a private or gated model, log in with `hf auth login` or set HF_TOKEN",
        )
    if "RevisionNotFoundError" in names:
        return WeightsError(f"Hugging Face hub model {repo_id} has no revision {model_id.partition('@')[2]!r}")
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names:
        return WeightsError(
            f"could not download Hugging Face hub model {model_id}",
            f"no network, and the hub cache {_cache_folder()} does not hold it: connect once to cache it, "
            "set HF_HOME to a folder whose hub cache holds it, or pass backbone=ARCHITECTURE (from its "
            "config.json) with weights=FILE",
        )
    if "EntryNotFoundError" in names or "RemoteEntryNotFoundError" in names:
        return WeightsError(
            f"Hugging Face hub model {repo_id} has no timm config.json or weights file",
            "a hub backbone must be a timm model (config.json naming a timm architecture)",
        )
    return None


def fetch_config(model_id: str) -> HubModel:
    """``config.json`` of ``model_id`` from the local hub cache or the hub, pinned to its commit."""
    from huggingface_hub import hf_hub_download
    from timm.models import load_model_config_from_hf

    repo_id, _, revision = model_id.partition("@")
    try:
        path = Path(hf_hub_download(repo_id, "config.json", revision=revision or None))
    except Exception as exc:
        error = hub_error(model_id, exc)
        if error is None:
            raise
        raise error from None
    commit = path.parent.name  # <cache>/models--ORG--NAME/snapshots/<commit>/config.json
    if not _COMMIT.fullmatch(commit):
        raise WeightsError(f"the hub cache holds {repo_id}'s config.json outside a snapshot: {path}")
    try:
        pretrained_cfg, architecture, model_args = load_model_config_from_hf(f"{repo_id}@{commit}")[:3]
    except (KeyError, TypeError, ValueError) as exc:  # a repository of another library (transformers, ...)
        raise WeightsError(
            f"Hugging Face hub model {repo_id} is not a timm model ({type(exc).__name__} reading its config.json)",
            "a hub backbone must be a timm model (config.json naming a timm architecture)",
        ) from None
    import timm

    if not timm.is_model(architecture):
        raise WeightsError(
            f"Hugging Face hub model {repo_id} needs timm architecture {architecture!r}, "
            f"which timm {timm.__version__} does not have",
            "pip install -U timm",
        )
    return HubModel(model_id, repo_id, commit, architecture, dict(model_args or {}), _jsonable(pretrained_cfg))


def _jsonable(value: Any) -> Any:
    """Tuples as lists, and nothing that JSON cannot hold (a state dict in a pretrained config)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if k != "state_dict"}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def weights_file(hub: HubModel) -> Path | None:
    """The cached weights file timm loaded for ``hub`` (its safetensors form first, as timm prefers)."""
    from huggingface_hub import try_to_load_from_cache

    named = hub.pretrained_cfg.get("hf_hub_filename")
    if named:
        stem = str(named).rsplit(".", 1)[0]
        alternatives = [] if str(named).endswith(".safetensors") else [f"{stem}.safetensors", "model.safetensors"]
        candidates = [*alternatives, str(named)]
    else:
        candidates = ["model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin"]
    for filename in candidates:
        found = try_to_load_from_cache(hub.repo_id, filename, revision=hub.commit)
        if isinstance(found, str):
            return Path(found)
    return None


def record(hub: HubModel, weights_loaded: bool) -> dict[str, Any]:
    """What a run stores about its hub backbone: enough to say which weights produced it and to rebuild
    the architecture offline. ``weights_loaded``: the hub's weights were loaded (not weights=none|FILE)."""
    from tlcore.models.weights import sha256_of

    out: dict[str, Any] = {
        "id": hub.model_id,
        "repo_id": hub.repo_id,
        "revision": hub.commit,
        "architecture": hub.architecture,
        "model_args": _jsonable(hub.model_args),
    }
    if weights_loaded:
        path = weights_file(hub)
        out["file"] = path.name if path else None
        out["sha256"] = sha256_of(path) if path else None
    out["pretrained_cfg"] = hub.pretrained_cfg
    return out


def summary(hub_record: dict[str, Any]) -> dict[str, Any]:
    """The record as report.json shows it (the pretrained config is in model.json)."""
    return {k: v for k, v in hub_record.items() if k != "pretrained_cfg"}


def rebuild(hub_record: dict[str, Any], in_chans: int) -> nn.Module:
    """The feature extractor's architecture from a run's record, without the hub and without weights."""
    import timm
    from timm.models import PretrainedCfg

    known = {f.name for f in fields(PretrainedCfg)}
    cfg = {k: v for k, v in dict(hub_record.get("pretrained_cfg") or {}).items() if k in known}
    args = {**dict(hub_record.get("model_args") or {}), "num_classes": 0, "in_chans": in_chans}
    return timm.create_model(str(hub_record["architecture"]), pretrained=False, pretrained_cfg=cfg or None, **args)
