"""K fold models as one model: what ``tl predict``, ``tl evaluate``, ``tl stress`` and ``tl export`` load.

Each member was trained on its own fold, so each has its own train statistics: the regression target
scaler, and for non-uint8 data (bands, floats) the per-channel input mean/std. The ensemble takes inputs
normalised the first member's way and gives each member the input it was trained on (an affine map per
channel). It averages what a user reads: class or label probabilities, or values in the targets' units.
It returns them in the form the task's activation expects (log-probabilities, logits, or values
standardised the first member's way), so every caller treats it like any single model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

#: Probabilities are clipped before the log/logit so an averaged 0 or 1 stays finite.
EPS = 1e-7


def _affine(mine: Sequence[float], theirs: Sequence[float]) -> torch.Tensor:
    return torch.tensor([float(a) for a in mine], dtype=torch.float32) / torch.tensor(
        [float(b) for b in theirs], dtype=torch.float32
    )


def _input_map(first: dict[str, Any] | None, member: dict[str, Any] | None, channels: int) -> torch.Tensor:
    """``(2, C)``: scale and shift taking the first member's normalised input to this member's."""
    if not first or not member:  # uint8 images: every member uses the pretrained mean/std
        return torch.stack([torch.ones(channels), torch.zeros(channels)])
    scale = _affine(first["std"], member["std"])
    shift = (torch.tensor(first["mean"], dtype=torch.float32) - torch.tensor(member["mean"])) / torch.tensor(
        member["std"], dtype=torch.float32
    )
    return torch.stack([scale, shift])


def _output_map(first: dict[str, Any] | None, member: dict[str, Any] | None, k: int) -> torch.Tensor:
    """``(2, k)``: scale and shift taking this member's standardised regression output to the first member's."""
    if not first or not member:
        return torch.stack([torch.ones(k), torch.zeros(k)])
    scale = _affine(member["std"], first["std"])
    shift = (torch.tensor(member["mean"], dtype=torch.float32) - torch.tensor(first["mean"])) / torch.tensor(
        first["std"], dtype=torch.float32
    )
    return torch.stack([scale, shift])


class FoldEnsemble(nn.Module):
    """The average of ``members``' outputs in the user's units, returned as the task's activation expects.

    ``metas``: each member's ``ModelMeta`` (its ``input_stats`` and ``target_norm`` set the maps).
    """

    input_maps: torch.Tensor  # (K, 2, C) buffers, registered in __init__
    output_maps: torch.Tensor  # (K, 2, k)

    def __init__(self, members: Sequence[nn.Module], metas: Sequence[Any], task: str) -> None:
        super().__init__()
        if not members or len(members) != len(metas):
            raise ValueError("an ensemble needs one meta per member, and at least one member")
        self.members = nn.ModuleList(members)
        self.task = task
        first = metas[0]
        k = len(first.classes)
        self.register_buffer(
            "input_maps", torch.stack([_input_map(first.input_stats, m.input_stats, first.in_chans) for m in metas])
        )
        self.register_buffer(
            "output_maps", torch.stack([_output_map(first.target_norm, m.target_norm, k) for m in metas])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for i, member in enumerate(self.members):
            scale, shift = self.input_maps[i, 0], self.input_maps[i, 1]
            out = member(x * scale.view(1, -1, 1, 1).to(x.dtype) + shift.view(1, -1, 1, 1).to(x.dtype)).float()
            if self.task == "classification":
                out = torch.softmax(out, dim=1)
            elif self.task == "multilabel":
                out = torch.sigmoid(out)
            else:
                out = out * self.output_maps[i, 0] + self.output_maps[i, 1]
            total = out if total is None else total + out
        assert total is not None
        mean = total / len(self.members)
        if self.task == "classification":
            return torch.log(mean.clamp_min(EPS))
        if self.task == "multilabel":
            p = mean.clamp(EPS, 1 - EPS)
            return torch.log(p / (1 - p))
        return mean


def members_of(model: nn.Module) -> list[nn.Module]:
    """The single models inside ``model``: a fold ensemble's members, or the model itself."""
    return list(model.members) if isinstance(model, FoldEnsemble) else [model]
