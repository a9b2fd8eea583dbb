"""The defaults of ``tl advise`` and ``tl compare``, shared by the commands' options, the library's option
classes and the Python API (``tlcore.advise``, ``tlcore.compare``). Plain values: importing this module
loads neither torch nor the advisor, so ``tl --help`` stays quick."""

from __future__ import annotations

#: The offline ImageNet backbones plus a from-scratch control of the first one's architecture.
OFFLINE_CANDIDATES = (
    "tf_efficientnet_lite0",
    "tf_efficientnet_lite1",
    "tf_efficientnet_lite2",
    "tf_efficientnet_lite0@none",
)
#: Added to the default candidates (before the from-scratch control) when the model hub answers.
HUB_CANDIDATES = ("resnet50", "convnext_tiny")
#: Every score is computed on a stratified subsample of at most this many train images.
BUDGET_IMAGES = 1000
#: The compute budget, in minutes, for one fine-tuning run on this machine; over it, feature extraction.
BUDGET_MINUTES = 60.0
#: Cross-validation folds of the linear and k-NN probes.
FOLDS = 5
#: Images for the BatchNorm-statistics similarity pass.
SIMILARITY_IMAGES = 64

#: The methods ``tl compare`` trains, in the order of its tables and plots.
METHODS = ("scratch", "feature-extraction", "fine-tuning")
#: The label fractions of train ``tl compare`` measures by default.
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
#: Subsets (and training seeds) per fraction below 1.0.
REPEATS = 1
