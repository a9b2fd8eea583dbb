"""The agriculture presets: recipes that extend the core ``fine-tuning`` preset.

All three keep the core's small-data fine-tuning strategy: the offline ImageNet EfficientNet-Lite0,
LP-FT (a linear probe on cached features first, so a random head does not distort the pretrained
features; then everything but the stem trains with a 3x smaller backbone learning rate), warm-up
plus cosine, AdamW. What changes per domain is said next to each setting.
"""

from __future__ import annotations

from tlcore.specs import Preset

# Settings every crop-disease preset states itself rather than inheriting, so a change to the core
# preset cannot silently change a recipe whose accuracy the README reports.
_SMALL_DATA = {
    "backbone": "tf_efficientnet_lite0",
    "weights": "default",
    "strategy": "lp-ft",
    "freeze_stages": 1,
    # Small val sets (a few hundred leaves) saturate, so the "best" epoch is mostly noise: train the
    # whole cosine schedule and keep its end (on beans, val-picked early epochs generalised worse).
    "early_stopping": 0,
    "checkpoint": "last",
    # A leaf is a leaf mirrored: average the prediction with the mirror image's.
    "tta": True,
}

LEAF_DISEASE = Preset(
    name="agriculture/leaf-disease",
    description="leaf-disease photos taken in the field (phones, natural light): LP-FT fine-tuning of the offline "
    "EfficientNet-Lite0 with field-condition augmentation (framing, any angle, light, shadow, white balance, "
    "blur, noise, JPEG)",
    settings={
        **_SMALL_DATA,
        # Field photos differ from each other in exactly these ways; a model must not key on them.
        "augmentation": "agriculture/field",
        # 15 epochs, as the core preset: the heavier augmentation makes each epoch harder, not easier.
        "epochs": 15,
        # Field data sets are often imbalanced (cassava: 72% in two classes) and noisy; class weights
        # would trade overall accuracy for rare-class recall, so they stay off here. For rare diseases
        # that must not be missed: --set class_weights=balanced.
        "class_weights": "none",
        "label_smoothing": 0.1,  # field labels are noisy (mixed infections, early symptoms)
        "stress_perturbations": ["agriculture/shadow", "agriculture/motion-blur"],
    },
    extends="fine-tuning",
)

PLANTVILLAGE = Preset(
    name="agriculture/plantvillage",
    description="lab photos of single leaves on a uniform background (PlantVillage-style): LP-FT fine-tuning of "
    "the offline EfficientNet-Lite0 with mild augmentation, balanced class weights, 10 epochs",
    settings={
        **_SMALL_DATA,
        # Train and test come from the same lab set-up: mild, mostly geometric augmentation.
        "augmentation": "agriculture/lab",
        # Lab leaves are well separated by ImageNet features (a linear probe is already strong), so the
        # model converges sooner than on field photos; 10 epochs also keep a per-crop run short.
        "epochs": 10,
        # PlantVillage classes range from ~150 to ~5500 images (Potato healthy vs Orange greening):
        # on near-separable lab data balanced weights protect small classes at almost no accuracy cost.
        "class_weights": "balanced",
        "monitor": "balanced_accuracy",
        # Lab-trained models meet the field: `tl stress` tries shade and motion blur on val.
        "stress_perturbations": ["agriculture/shadow", "agriculture/motion-blur"],
    },
    extends="fine-tuning",
)

AERIAL_YIELD = Preset(
    name="agriculture/aerial-yield",
    description="yield (or any measured number) from multispectral aerial tiles: regression with a Huber loss on "
    "the offline EfficientNet-Lite0 with its stem adapted to the data's bands, model chosen on val R²",
    settings={
        **_SMALL_DATA,
        # Tiles come from a CSV of tile -> yield; this adapter reads GeoTIFF/.npy bands as float32.
        "adapter": "agriculture/aerial-tiles",
        "augmentation": "agriculture/aerial",
        # A tile's target is measured over the whole tile: the eval view resizes it whole, no centre crop.
        "crop_pct": 1.0,
        # in_chans follows the data (bands + indices); timm adapts the pretrained RGB stem to them.
        "in_chans": None,
        # The adapted stem has never seen NIR or red-edge: it trains too (the photo presets freeze it).
        "freeze_stages": 0,
        # Band images are far from ImageNet photos, so the backbone must move more than for leaf photos:
        # one learning rate for backbone and head. On synthetic 5-band tiles (yield from NDVI) this took
        # val R² from 0.44 (the photo presets' 0.3x) to 0.61-0.71.
        "backbone_lr_mult": 1.0,
        # Huber on standardised yields: a few tiles with harvester errors (headlands, turns) should not
        # dominate the gradient the way they do under MSE.
        "loss": "huber",
        "monitor": "r2",
        # Unlike accuracy on a few hundred leaves, R² on held-out fields does not saturate, so the best
        # val epoch is a real signal; the whole schedule still runs.
        "checkpoint": "best",
        "epochs": 15,
        "class_weights": "none",
        "label_smoothing": 0.0,  # a classification setting; regression ignores it
        # Nadir tiles have no handedness: the mirror image is as valid a view as the tile itself.
        "tta": True,
        # pHash looks at 8-bit pictures; on float bands it says little, and neighbouring tiles of one field
        # look alike by nature. Leakage is handled by grouping tiles by field or spatial block instead;
        # exact duplicates across splits are still reported.
        "near_duplicate_distance": None,
        # Cloud shadows and a moving platform: `tl stress` tries both on val tiles.
        "stress_perturbations": ["agriculture/shadow", "agriculture/motion-blur"],
    },
    extends="fine-tuning",
)

CROP_DISEASE_PRESETS = (LEAF_DISEASE, PLANTVILLAGE)
PRESETS = (*CROP_DISEASE_PRESETS, AERIAL_YIELD)
