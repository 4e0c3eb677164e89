"""astroco_hf: the Hugging Face-native reference implementation of AstroCo.

Importing the package registers AstroCo with the transformers Auto classes:
`AutoConfig`, `AutoModel`, `AutoModelForPreTraining` (masked reconstruction) and
`AutoModelForSequenceClassification`.
"""

from importlib.metadata import PackageNotFoundError, version

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_astroco import PRESETS, AstroCoConfig
from .modeling_astroco import (
    AstroCoForMaskedReconstruction,
    AstroCoForSequenceClassification,
    AstroCoMaskedReconstructionOutput,
    AstroCoModel,
    AstroCoModelOutput,
    AstroCoPreTrainedModel,
    AstroCoSequenceClassifierOutput,
)

try:
    __version__ = version("astroco_hf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

AutoConfig.register(AstroCoConfig.model_type, AstroCoConfig, exist_ok=True)
AutoModel.register(AstroCoConfig, AstroCoModel, exist_ok=True)
AutoModelForPreTraining.register(AstroCoConfig, AstroCoForMaskedReconstruction, exist_ok=True)
AutoModelForSequenceClassification.register(AstroCoConfig, AstroCoForSequenceClassification, exist_ok=True)

# save_pretrained copies configuration_astroco.py and modeling_astroco.py next to the weights, so
# a saved folder also loads as Hub remote code where this package is not installed.
AstroCoConfig.register_for_auto_class()
AstroCoModel.register_for_auto_class("AutoModel")
AstroCoForMaskedReconstruction.register_for_auto_class("AutoModelForPreTraining")
AstroCoForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "__version__",
    "PRESETS",
    "AstroCoConfig",
    "AstroCoPreTrainedModel",
    "AstroCoModel",
    "AstroCoForMaskedReconstruction",
    "AstroCoForSequenceClassification",
    "AstroCoModelOutput",
    "AstroCoMaskedReconstructionOutput",
    "AstroCoSequenceClassifierOutput",
]
