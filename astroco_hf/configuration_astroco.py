"""AstroCo model configuration.

Presets follow the paper (appendix A): AstroCo-S (4 layers, 4 heads, d=276, 5.93M parameters) and
AstroCo-L (12 layers, 4 heads, d=256, 15.19M parameters), plus a tiny model for tests and CPU demos.
"""

from __future__ import annotations

import difflib
from dataclasses import fields
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig
from transformers.generation.configuration_utils import GenerationConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

__all__ = ["AstroCoConfig", "PRESETS"]

# Architecture hyperparameters of the named presets. Training hyperparameters (learning rate, batch
# size, patience) live with the training recipes, not in the model configuration.
PRESETS: dict[str, dict[str, Any]] = {
    "astroco-tiny": {"d_model": 64, "num_layers": 2, "num_heads": 4, "conv_kernel_size": 8},
    "astroco-s": {"d_model": 276, "num_layers": 4, "num_heads": 4},
    "astroco-l": {"d_model": 256, "num_layers": 12, "num_heads": 4},
}

_INPUT_FUSIONS = ("concat", "additive")
_FFN_TYPES = ("gated", "mlp")
_POOLINGS = ("scalar_mix", "last", "mean_layers")

# Keys of a config.json that are not dataclass fields but are understood: by PreTrainedConfig.__post_init__
# (which consumes them), by the Auto classes, or written by `astroco release`.
_KNOWN_EXTRA_KEYS = frozenset({
    "model_type", "auto_map", "custom_pipelines", "astroco_hf_version", "torch_dtype", "num_labels", "name_or_path", "_commit_hash",
    "output_attentions", "attn_implementation", "experts_implementation", "per_layer_config",
    "_attn_implementation_internal", "_experts_implementation_internal",
})

# Python types accepted by each annotation used for AstroCoConfig's own fields (a JSON number may be an
# int where a float is meant, never a bool where a number is meant).
_ANNOTATION_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float | int": (float, int), "bool": (bool,), "str": (str,)}


@strict
class AstroCoConfig(PreTrainedConfig):
    r"""Configuration of an AstroCo encoder and its heads.

    Args:
        d_model (`int`, defaults to 276):
            Width D of every hidden state. Must be divisible by `num_heads` and by 4 (the photometric
            and time embeddings each take D/2, and the time embedding needs sine/cosine pairs).
        num_layers (`int`, defaults to 4):
            Number of Conformer-style encoder blocks M.
        num_heads (`int`, defaults to 4):
            Attention heads per block; head size is `d_model // num_heads`.
        conv_kernel_size (`int`, defaults to 32):
            Depthwise convolution kernel K (paper appendix A). Even sizes are allowed: position t sees
            offsets -K//2 ... K-1-K//2, exactly the paper's formula.
        ffn_expansion (`int`, defaults to 4):
            Expansion ratio r of the feed-forward network (hidden size r*D).
        dropout (`float`, defaults to 0.1):
            Dropout on every residual branch (attention, convolution, FFN).
        attention_dropout (`float`, defaults to 0.0):
            Dropout on the attention probabilities. The paper only specifies residual dropout.
        time_embedding_base (`float`, defaults to 1000.0):
            Geometric base of the sinusoidal time embedding: angular frequencies are
            `base ** (-2k / (D/2))` rad/day for k = 0 .. D/4-1, i.e. periods from 2*pi days up to about
            2*pi*base days, which spans the within-window baselines of ground-based surveys. Astromer
            uses 1000 on MACHO; the paper does not state its value.
        center_times (`bool`, defaults to `True`):
            Subtract each sequence's mean time over valid points (in float64 when times are float64)
            before the embedding. The data pipeline already centres windows (paper section 4); doing it
            in the model as well makes raw MJD input safe and the model invariant to the time origin.
        max_sequence_length (`int`, defaults to 200):
            Longest sequence accepted by `forward` (the paper's window). Longer light curves are cut into
            windows by the data pipeline (`astroco_hf.data`) and the embedder.
        mask_value (`float`, defaults to 0.0):
            Placeholder that replaces magnitude and uncertainty at hidden and padded positions before the
            input projection ("zero scalar as masking token", appendix A).
        layer_norm_eps (`float`, defaults to 1e-5):
            Epsilon of every LayerNorm.
        batch_norm_momentum (`float`, defaults to 0.1):
            Momentum of the running statistics of the convolution module's BatchNorm. Its statistics are
            computed over valid (non-padding) positions only, so padding never pollutes them.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initialisation of linear and convolution weights.
        use_conv_module (`bool`, defaults to `True`):
            Ablation switch: include the depthwise-convolution sublayer in every block.
        ffn_type (`str`, defaults to `"gated"`):
            Ablation switch: `"gated"` (GELU value times sigmoid gate, paper eq. 1-2) or `"mlp"` (plain
            two-layer GELU MLP of the same expansion).
        input_fusion (`str`, defaults to `"concat"`):
            Ablation switch: `"concat"` (photometry to D/2, time to D/2, concatenated and fused, the paper)
            or `"additive"` (photometry to D plus a D-wide time embedding, Astromer-style).
        pooling (`str`, defaults to `"scalar_mix"`):
            Ablation switch for the sequence embedding: `"scalar_mix"` (softmax-weighted sum of the input
            embedding and every block output, the paper), `"last"` (last block only) or `"mean_layers"`
            (uniform average of all layers). Masked mean pooling over valid positions follows in all cases.
        classifier_dropout (`float`, defaults to 0.0):
            Dropout on the pooled embedding before the classification head.
        freeze_encoder (`bool`, defaults to `False`):
            For `AstroCoForSequenceClassification`: train only the head and the scalar-mix weights (the
            paper's frozen-encoder protocol); the encoder's BatchNorm statistics stay fixed too.

    Example:

    ```python
    >>> from astroco_hf import AstroCoConfig, AstroCoModel
    >>> config = AstroCoConfig.from_preset("astroco-s")
    >>> model = AstroCoModel(config)
    ```
    """

    model_type = "astroco"
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "num_layers",
        "num_attention_heads": "num_heads",
    }

    d_model: int = 276
    num_layers: int = 4
    num_heads: int = 4
    conv_kernel_size: int = 32
    ffn_expansion: int = 4
    dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    time_embedding_base: float | int = 1000.0
    center_times: bool = True
    max_sequence_length: int = 200
    mask_value: float | int = 0.0
    layer_norm_eps: float | int = 1e-5
    batch_norm_momentum: float | int = 0.1
    initializer_range: float | int = 0.02
    use_conv_module: bool = True
    ffn_type: str = "gated"
    input_fusion: str = "concat"
    pooling: str = "scalar_mix"
    classifier_dropout: float | int = 0.0
    freeze_encoder: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        """Check the field types (one-line `ValueError`) and warn once about keys that are not fields.

        `kwargs` holds every key that is not a dataclass field, e.g. a misspelt key of a config.json; it
        is kept as an attribute, as transformers does, but nothing reads it.
        """
        own = vars(AstroCoConfig)["__annotations__"]
        for name, annotation in own.items():
            value, expected = getattr(self, name), _ANNOTATION_TYPES[annotation]
            if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
                raise ValueError(f"AstroCoConfig: {name}={value!r} ({type(value).__name__}) must be "
                                 f"{' or '.join(t.__name__ for t in expected)}.")
        valid = {f.name for f in fields(self)}
        unknown = [key for key in kwargs
                   if key not in _KNOWN_EXTRA_KEYS and key not in GenerationConfig._get_default_generation_params()]
        if unknown:
            described = ", ".join(f"{key!r}{_closest(key, valid)}" for key in unknown)
            logger.warning(f"AstroCoConfig: unknown key {described}; kept in the config but not used by the model.")
        super().__post_init__(**kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> AstroCoConfig:
        """Build the configuration of a named preset (`astroco-tiny`, `astroco-s`, `astroco-l`).

        Keyword arguments override preset values, e.g. `from_preset("astroco-s", dropout=0.0)`.
        """
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ValueError(f"Unknown AstroCo preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[key], **overrides})

    def validate_architecture(self) -> None:
        """Reject inconsistent architectures at construction, saying how to fix them."""
        _require(self.d_model > 0, f"d_model must be positive, got {self.d_model}.")
        _require(self.num_layers > 0, f"num_layers must be positive, got {self.num_layers}.")
        _require(self.num_heads > 0, f"num_heads must be positive, got {self.num_heads}.")
        _require(
            self.d_model % self.num_heads == 0,
            f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}); "
            f"e.g. d_model={self.num_heads * max(1, round(self.d_model / self.num_heads))}.",
        )
        _require(
            self.d_model % 4 == 0,
            f"d_model ({self.d_model}) must be divisible by 4: photometry and time each take d_model/2 "
            "and the sinusoidal time embedding needs sine/cosine pairs.",
        )
        _require(self.conv_kernel_size > 0, f"conv_kernel_size must be positive, got {self.conv_kernel_size}.")
        _require(self.ffn_expansion > 0, f"ffn_expansion must be positive, got {self.ffn_expansion}.")
        for name in ("dropout", "attention_dropout", "classifier_dropout"):
            value = getattr(self, name)
            _require(0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value}.")
        _require(self.time_embedding_base > 1.0, f"time_embedding_base must be > 1, got {self.time_embedding_base}.")
        _require(self.max_sequence_length > 0, f"max_sequence_length must be positive, got {self.max_sequence_length}.")
        _require(self.layer_norm_eps > 0, f"layer_norm_eps must be positive, got {self.layer_norm_eps}.")
        _require(
            0.0 < self.batch_norm_momentum <= 1.0,
            f"batch_norm_momentum must be in (0, 1], got {self.batch_norm_momentum}.",
        )
        _require(self.initializer_range > 0, f"initializer_range must be positive, got {self.initializer_range}.")
        _require(self.ffn_type in _FFN_TYPES, f"ffn_type must be one of {_FFN_TYPES}, got {self.ffn_type!r}.")
        _require(
            self.input_fusion in _INPUT_FUSIONS,
            f"input_fusion must be one of {_INPUT_FUSIONS}, got {self.input_fusion!r}.",
        )
        _require(self.pooling in _POOLINGS, f"pooling must be one of {_POOLINGS}, got {self.pooling!r}.")


def _closest(key: str, valid: set[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest field name (difflib), or ``""`` when none is close."""
    match = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"Invalid AstroCoConfig: {message}")
