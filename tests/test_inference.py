"""BatchNorm folding for feature extraction: faster, the same features, and refused when it would be wrong."""

from __future__ import annotations

import timm
import torch
from timm.layers import StdConv2d
from torch import nn

from tlcore.models.inference import FoldedInference, fold_batchnorm


def _with_running_stats(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so a wrong fold shows."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return model.eval()


@torch.inference_mode()
def test_folding_efficientnet_lite_keeps_its_outputs_and_activations() -> None:
    torch.manual_seed(0)
    model = _with_running_stats(timm.create_model("tf_efficientnet_lite0", num_classes=0))
    folded, pairs = fold_batchnorm(model)
    assert pairs >= 40  # every conv -> BatchNormAct pair of the stem, the blocks and the head
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 96, 96)
    reference, out = model(x), folded(x)
    assert (out - reference).abs().max() <= 1e-4 * reference.abs().max()
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched


class BnBeforeConv(nn.Module):
    """Registered conv then bn, but run bn then conv: module order that lies about data flow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.conv(self.bn(x)))


@torch.inference_mode()
def test_a_fold_that_changes_the_output_is_refused() -> None:
    torch.manual_seed(0)
    for model, x in (
        (_with_running_stats(nn.Sequential(StdConv2d(3, 8, 3), nn.BatchNorm2d(8))), torch.randn(2, 3, 16, 16)),
        (_with_running_stats(BnBeforeConv()), torch.randn(2, 8, 16, 16)),
    ):
        assert fold_batchnorm(model)[1] == 1  # structurally a pair ...
        forward = FoldedInference(model)
        first = forward(x)
        assert forward.folded is False  # ... but its outputs differ, so the original runs
        assert torch.equal(first, model(x)) and torch.equal(forward(x), model(x))


@torch.inference_mode()
def test_verified_fold_is_used_after_the_first_batch() -> None:
    torch.manual_seed(0)
    model = _with_running_stats(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()))
    forward = FoldedInference(model)
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(forward(x), model(x))  # batch one: the original's output, exactly
    assert forward.folded is True
    assert torch.allclose(forward(x), model(x), atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in forward.candidate.modules())
