"""astroco_hf: the Hugging Face-native reference implementation of AstroCo.

Importing the package registers AstroCo with the transformers Auto classes:
`AutoConfig`, `AutoModel`, `AutoModelForPreTraining` (masked reconstruction),
`AutoModelForSequenceClassification` and `AutoFeatureExtractor` (:class:`AstroCoFeatureExtractor`).
The pipelines live in :mod:`astroco_hf.pipelines` (imported on demand: transformers' pipeline module
is slow to import).
"""

from importlib.metadata import PackageNotFoundError, version

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_astroco import PRESETS, AstroCoConfig
from .feature_extraction_astroco import AstroCoFeatureExtractor
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
AutoFeatureExtractor.register(AstroCoConfig, AstroCoFeatureExtractor, exist_ok=True)

# save_pretrained copies configuration_astroco.py and modeling_astroco.py next to the weights, so
# a saved folder also loads as Hub remote code where this package is not installed.
AstroCoConfig.register_for_auto_class()
AstroCoModel.register_for_auto_class("AutoModel")
AstroCoForMaskedReconstruction.register_for_auto_class("AutoModelForPreTraining")
AstroCoForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
# The feature extractor's save_pretrained writes preprocessor_config.json with its own auto_map and copies
# feature_extraction_astroco.py and windowing.py beside it.
AstroCoFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = [
    "__version__",
    "PRESETS",
    "AstroCoConfig",
    "AstroCoFeatureExtractor",
    "AstroCoPreTrainedModel",
    "AstroCoModel",
    "AstroCoForMaskedReconstruction",
    "AstroCoForSequenceClassification",
    "AstroCoModelOutput",
    "AstroCoMaskedReconstructionOutput",
    "AstroCoSequenceClassifierOutput",
]
