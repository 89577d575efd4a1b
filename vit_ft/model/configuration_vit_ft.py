"""Configuration of the vit_ft Vision Transformer.

This file ships as remote code next to saved models, so it imports nothing from the rest of vit_ft.
"""

from transformers import PretrainedConfig

# Architectures named as timm names them, so `from_preset("vit_base_patch16_224")` builds the same network as
# `timm.create_model("vit_base_patch16_224")` (same parameter count, tested). Sizes from Dosovitskiy et al. 2021
# (Table 1), Steiner et al. 2021 (ViT-Ti/S) and Touvron et al. 2021 (DeiT).
_SIZES = {
    "tiny": dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
    "huge": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16),
}
_VIT_VARIANTS = [
    ("tiny", 16, 224),
    ("tiny", 16, 384),
    ("small", 16, 224),
    ("small", 16, 384),
    ("small", 32, 224),
    ("small", 32, 384),
    ("base", 16, 224),
    ("base", 16, 384),
    ("base", 32, 224),
    ("base", 32, 384),
    ("large", 14, 224),
    ("large", 16, 224),
    ("large", 16, 384),
    ("large", 32, 224),
    ("large", 32, 384),
    ("huge", 14, 224),
]
_DEIT_VARIANTS = [("tiny", 224), ("small", 224), ("base", 224), ("base", 384)]


def _build_presets() -> dict[str, dict]:
    presets = {}
    for size, patch, image in _VIT_VARIANTS:
        presets[f"vit_{size}_patch{patch}_{image}"] = dict(_SIZES[size], patch_size=patch, image_size=image)
    for size, image in _DEIT_VARIANTS:
        presets[f"deit_{size}_patch16_{image}"] = dict(_SIZES[size], patch_size=16, image_size=image)
        presets[f"deit_{size}_distilled_patch16_{image}"] = dict(
            _SIZES[size], patch_size=16, image_size=image, use_distillation_token=True
        )
    # Registers (Darcet et al. 2024, "Vision Transformers Need Registers"), as timm's `*_reg4_gap_256` models build
    # them: no class token, positions on patches only, mean pooling.
    registers = dict(
        patch_size=16,
        image_size=256,
        class_token=False,
        num_register_tokens=4,
        prefix_position_embeddings=False,
        pooling="mean",
    )
    presets["vit_medium_patch16_reg4_gap_256"] = dict(
        hidden_size=512, num_hidden_layers=12, num_attention_heads=8, layer_scale_init_value=1e-5, **registers
    )
    presets["vit_base_patch16_reg4_gap_256"] = dict(_SIZES["base"], **registers)
    for preset in presets.values():
        preset["intermediate_size"] = 4 * preset["hidden_size"]
    return presets


PRESETS: dict[str, dict] = _build_presets()


class ViTConfig(PretrainedConfig):
    r"""
    Configuration of a vit_ft [`ViTModel`] or [`ViTForImageClassification`].

    Args:
        image_size (`int`, *optional*, defaults to 224):
            Side of the square input image the position embeddings are laid out for.
        patch_size (`int`, *optional*, defaults to 16):
            Side of each square patch.
        num_channels (`int`, *optional*, defaults to 3):
            Number of input channels.
        hidden_size (`int`, *optional*, defaults to 768):
            Width of the token embeddings.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Number of Transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Attention heads per block.
        intermediate_size (`int`, *optional*, defaults to 3072):
            Hidden width of the MLP in each block.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the MLP, a key of transformers' `ACT2FN`.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Whether the query, key and value projections have a bias.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the layer norms (timm's value; transformers' ViT checkpoints use 1e-12).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after the embeddings, the attention output and the MLP.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities.
        classifier_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on the pooled features before the classifier.
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth (Huang et al. 2016): the largest drop probability of a residual branch, reached by the
            last block; earlier blocks get linearly less, as in timm and DeiT.
        layer_scale_init_value (`float`, *optional*):
            Initial value of the per-channel LayerScale (Touvron et al. 2021, CaiT). Off when `None`.
        position_embedding_type (`str`, *optional*, defaults to `"learned"`):
            `"learned"` for a trained table, `"sincos"` for fixed 2-D sine-cosine positions (no parameters; any
            image size works without interpolation).
        prefix_position_embeddings (`bool`, *optional*, defaults to `True`):
            Whether the learned table also holds positions for the prefix tokens (class, distillation, registers),
            as the original ViT and DeiT; `False` adds positions to patches only, as DeiT III and timm's register
            models do.
        pooling (`str`, *optional*, defaults to `"cls"`):
            `"cls"` classifies from the class token; `"mean"` from the mean of the patch tokens, normalised after
            pooling, as timm's `global_pool="avg"`.
        class_token (`bool`, *optional*, defaults to `True`):
            Whether a class token is prepended. Required by `pooling="cls"`.
        num_register_tokens (`int`, *optional*, defaults to 0):
            Extra learned tokens that take part in attention and are dropped at the output (Darcet et al. 2024).
        use_distillation_token (`bool`, *optional*, defaults to `False`):
            Adds DeiT's distillation token after the class token (Touvron et al. 2021).
        distillation_head (`bool`, *optional*, defaults to `True`):
            With the distillation token, whether a second classifier reads it. transformers'
            `DeiTForImageClassification` keeps the token but classifies from the class token alone (`False`).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal initialisation.
        mask_ratio (`float`, *optional*, defaults to 0.75):
            Masked autoencoding ([`ViTForMaskedAutoencoding`] only): the share of patches hidden from the encoder
            (He et al. 2022). The other fields below are its decoder's, named and defaulted as transformers'
            `ViTMAEConfig` (MAE's 512 wide, 8 blocks, 16 heads, MLP 2048).
        decoder_hidden_size (`int`, *optional*, defaults to 512):
            Width of the masked-autoencoding decoder; at most the encoder's `hidden_size`.
        decoder_num_hidden_layers (`int`, *optional*, defaults to 8):
            Blocks of the decoder.
        decoder_num_attention_heads (`int`, *optional*, defaults to 16):
            Attention heads of each decoder block.
        decoder_intermediate_size (`int`, *optional*, defaults to 2048):
            Hidden width of the MLP of each decoder block.
        norm_pix_loss (`bool`, *optional*, defaults to `True`):
            Whether the reconstruction target is each patch's pixels normalised by their own mean and variance (MAE's
            default, which its Table 1d finds better) rather than the pixels themselves.

    Example:

    ```python
    >>> from vit_ft import ViTConfig, ViTForImageClassification
    >>> config = ViTConfig.from_preset("vit_tiny_patch16_224", num_labels=10)
    >>> model = ViTForImageClassification(config)
    ```
    """

    model_type = "vit_ft"

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        classifier_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float | None = None,
        position_embedding_type: str = "learned",
        prefix_position_embeddings: bool = True,
        pooling: str = "cls",
        class_token: bool = True,
        num_register_tokens: int = 0,
        use_distillation_token: bool = False,
        distillation_head: bool = True,
        initializer_range: float = 0.02,
        mask_ratio: float = 0.75,
        decoder_hidden_size: int = 512,
        decoder_num_hidden_layers: int = 8,
        decoder_num_attention_heads: int = 16,
        decoder_intermediate_size: int = 2048,
        norm_pix_loss: bool = True,
        **kwargs,
    ):
        if position_embedding_type not in ("learned", "sincos"):
            raise ValueError(
                f"position_embedding_type={position_embedding_type!r} is not supported: use 'learned' or 'sincos'."
            )
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling={pooling!r} is not supported: use 'cls' or 'mean'.")
        if pooling == "cls" and not class_token:
            raise ValueError("pooling='cls' needs class_token=True; use pooling='mean' for a model without one.")
        if use_distillation_token and not class_token:
            raise ValueError("use_distillation_token=True needs class_token=True, as DeiT has both.")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size={hidden_size} is not divisible by num_attention_heads={num_attention_heads}."
            )
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not a multiple of patch_size={patch_size}.")
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.qkv_bias = qkv_bias
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.classifier_dropout_prob = classifier_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.layer_scale_init_value = layer_scale_init_value
        self.position_embedding_type = position_embedding_type
        self.prefix_position_embeddings = prefix_position_embeddings
        self.pooling = pooling
        self.class_token = class_token
        self.num_register_tokens = num_register_tokens
        self.use_distillation_token = use_distillation_token
        self.distillation_head = distillation_head
        self.initializer_range = initializer_range
        self.mask_ratio = mask_ratio
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_hidden_layers = decoder_num_hidden_layers
        self.decoder_num_attention_heads = decoder_num_attention_heads
        self.decoder_intermediate_size = decoder_intermediate_size
        self.norm_pix_loss = norm_pix_loss
        super().__init__(**kwargs)

    def check_masked_autoencoding(self) -> None:
        """
        Raises a one-line ValueError unless the masked-autoencoding fields fit this encoder: a mask ratio in (0, 1), a
        decoder whose width divides into its heads and into 2-D sine-cosine positions, and no wider than the encoder
        (MAE's widest decoder, Table 1b, is ViT-L's own width, 1024).
        """
        if not 0 < self.mask_ratio < 1:
            raise ValueError(f"mask_ratio={self.mask_ratio} must be between 0 and 1 (exclusive); MAE uses 0.75.")
        width, heads = self.decoder_hidden_size, self.decoder_num_attention_heads
        if width > self.hidden_size:
            raise ValueError(
                f"decoder_hidden_size={width} is wider than the encoder (hidden_size={self.hidden_size}):"
                f" the limit is the encoder's width, {self.hidden_size} (MAE: 512 for ViT-B's 768)."
            )
        if width < 4 or width % 4 or heads < 1 or width % heads:
            raise ValueError(
                f"decoder_hidden_size={width} must be a positive multiple of 4 (sine-cosine positions) "
                f"and of decoder_num_attention_heads={heads}."
            )
        if self.decoder_num_hidden_layers < 1 or self.decoder_intermediate_size < 1:
            raise ValueError(
                f"decoder_num_hidden_layers={self.decoder_num_hidden_layers} and "
                f"decoder_intermediate_size={self.decoder_intermediate_size} must be at least 1."
            )

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: class, distillation, registers."""
        return int(self.class_token) + int(self.use_distillation_token) + self.num_register_tokens

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "ViTConfig":
        # A transformers ViT/DeiT config would otherwise build a vit_ft model whose weights all fail to load: their
        # keys and config fields need converting, which vit_ft's checkpoint reader does.
        model_type = config_dict.get("model_type", cls.model_type)
        if model_type != cls.model_type:
            raise ValueError(
                f"The checkpoint holds a {model_type!r} model, not a vit_ft one. Load transformers ViT/DeiT "
                "checkpoints with vit_ft.checkpoints.load_checkpoint(path, ViTForImageClassification), which converts "
                "them, or convert once with `vit-ft convert --from transformers`."
            )
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "ViTConfig":
        """
        Builds the configuration of a named architecture, e.g. `ViTConfig.from_preset("vit_base_patch16_224",
        num_labels=10)`. Names follow timm's; `overrides` set any other field. Without labels the head has timm's
        1,000 classes. A timm pretrained tag after a dot (`vit_base_patch16_224.augreg_in21k`) is ignored.
        """
        arch = name.split(".", 1)[0]
        if arch not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}. Known presets: {', '.join(sorted(PRESETS))}.")
        # timm's default head: the 1,000 ImageNet classes, unless labels are given.
        labels = {} if "id2label" in overrides else {"num_labels": 1000}
        return cls(**{**labels, **PRESETS[arch], **overrides})


__all__ = ["PRESETS", "ViTConfig"]
