"""The vit_ft Vision Transformer (Dosovitskiy et al. 2021) with DeiT's distillation token (Touvron et al. 2021),
registers (Darcet et al. 2024), LayerScale, stochastic depth and fixed sine-cosine positions.

This file ships as remote code next to saved models: it imports only torch, transformers' public API and its
sibling `configuration_vit_ft`, which is copied with it. Reading and converting other checkpoints lives in
`vit_ft.checkpoints`, outside the remote code.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Unpack

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput, ModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import TransformersKwargs, can_return_tuple
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_vit_ft import ViTConfig


def sincos_position_embeddings(grid: tuple[int, int], dim: int, device=None) -> torch.Tensor:
    """
    Fixed 2-D sine-cosine positions (as MAE, He et al. 2022): half the channels encode the row, half the column,
    each as sin and cos at `dim / 4` frequencies 1 / 10000^(i / (dim / 4)). Returns `(1, grid_h * grid_w, dim)`.
    """
    if dim % 4:
        raise ValueError(f"sincos position embeddings need hidden_size divisible by 4, got {dim}.")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32, device=device) / (dim // 4))
    rows, cols = torch.meshgrid(
        torch.arange(grid[0], dtype=torch.float32, device=device),
        torch.arange(grid[1], dtype=torch.float32, device=device),
        indexing="ij",
    )
    angles_h = rows.reshape(-1, 1) * omega  # (tokens, dim / 4)
    angles_w = cols.reshape(-1, 1) * omega
    return torch.cat([angles_h.sin(), angles_h.cos(), angles_w.sin(), angles_w.cos()], dim=1).unsqueeze(0)


def resample_position_embeddings(
    table: torch.Tensor, num_prefix: int, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """
    Resizes a learned position table `(1, num_prefix + old_h * old_w, dim)` to a `new_grid` of patches, bicubically
    (as transformers' ViT `interpolate_pos_encoding`). Prefix-token positions are kept as they are.
    """
    prefix, patches = table[:, :num_prefix], table[:, num_prefix:]
    if old_grid is None:
        side = int(patches.shape[1] ** 0.5)
        if side * side != patches.shape[1]:
            raise ValueError(
                f"Cannot infer the patch grid of a position table with {patches.shape[1]} patch positions; "
                "it is not a square."
            )
        old_grid = (side, side)
    if tuple(old_grid) == tuple(new_grid):
        return table
    dim = table.shape[-1]
    grid = patches.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, dim, old_h, old_w)
    # Interpolate in float32: bicubic on bf16/fp16 is not implemented everywhere and loses precision.
    grid = nn.functional.interpolate(grid.float(), size=new_grid, mode="bicubic", align_corners=False)
    patches = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)
    return torch.cat([prefix, patches], dim=1)


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drops a whole residual branch per sample, scaling the kept ones by 1 / keep_prob."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1.0 - drop_prob
    mask = hidden_states.new_empty((hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)).bernoulli_(keep_prob)
    return hidden_states * mask / keep_prob


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    # query, key, value: (batch, heads, tokens, head_dim)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (batch, tokens, heads, head_dim)
    return output, weights


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str | None) -> torch.Tensor:
    """
    Loss of `logits` (batch, num_labels) against:
    - hard labels, integer `(batch,)`: cross-entropy;
    - targets shaped like the logits with `problem_type="multi_label_classification"`: binary cross-entropy;
    - other float targets shaped like the logits (MixUp/CutMix, label smoothing): cross-entropy against the
      target distribution;
    - float `(batch,)` targets with a single output: mean squared error (`problem_type="regression"`).
    """
    if problem_type == "regression" or (logits.shape[-1] == 1 and labels.is_floating_point() and labels.ndim == 1):
        return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
    if labels.shape == logits.shape:
        if problem_type == "multi_label_classification":
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return nn.functional.cross_entropy(logits, labels.to(logits.dtype))
    if labels.is_floating_point() or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} and dtype {labels.dtype} do not fit logits of shape "
            f"{tuple(logits.shape)}: pass integer class ids of shape ({logits.shape[0]},) or float targets of shape "
            f"{tuple(logits.shape)}."
        )
    return nn.functional.cross_entropy(logits, labels)


class ViTPatchEmbeddings(nn.Module):
    """Cuts `(batch, channels, height, width)` images into patches and projects each to `hidden_size`."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.num_channels = config.num_channels
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.num_channels:
            raise ValueError(
                f"pixel_values of shape {tuple(pixel_values.shape)} do not match the model: expected "
                f"(batch, {self.num_channels}, height, width). Convert images to RGB (or set num_channels) first."
            )
        return self.projection(pixel_values).flatten(2).transpose(1, 2)  # (batch, patches, hidden)


class ViTEmbeddings(nn.Module):
    """Patch embeddings with the prefix tokens (class, distillation, registers, in that order) and positions."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = ViTPatchEmbeddings(config)
        hidden = config.hidden_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden)) if config.class_token else None
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, hidden)) if config.use_distillation_token else None
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, config.num_register_tokens, hidden)) if config.num_register_tokens else None
        )
        self.grid = (config.image_size // config.patch_size,) * 2
        self.num_positioned_prefix = config.num_prefix_tokens if config.prefix_position_embeddings else 0
        if config.position_embedding_type == "learned":
            num_positions = self.num_positioned_prefix + self.grid[0] * self.grid[1]
            self.position_embeddings = nn.Parameter(torch.zeros(1, num_positions, hidden))
        else:
            self.position_embeddings = None
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def _positions(self, grid: tuple[int, int], device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Returns the prefix-token positions (or None) and the patch positions for a grid of patches."""
        if self.position_embeddings is None:
            return None, sincos_position_embeddings(grid, self.config.hidden_size, device)
        table = self.position_embeddings
        if grid != self.grid:
            table = resample_position_embeddings(table, self.num_positioned_prefix, grid, self.grid)
        prefix = table[:, : self.num_positioned_prefix] if self.num_positioned_prefix else None
        return prefix, table[:, self.num_positioned_prefix :]

    def forward(
        self,
        pixel_values: torch.Tensor,
        interpolate_pos_encoding: bool = False,
        visible_patches: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""
        visible_patches (`torch.LongTensor` of shape `(batch, kept)`, *optional*):
            The patches to keep, by index (masked autoencoding): the others are dropped after their positions are
            added and before the prefix tokens are prepended, so the encoder sees only these.
        """
        height, width = pixel_values.shape[-2:]
        size = self.config.image_size
        if not interpolate_pos_encoding and (height != size or width != size):
            raise ValueError(
                f"Input image size ({height}x{width}) does not match the model's image_size ({size}x{size}). "
                f"Resize the images to {size}x{size}, or pass interpolate_pos_encoding=True to interpolate the "
                "position embeddings."
            )
        embeddings = self.patch_embeddings(pixel_values)  # (batch, patches, hidden)
        batch = embeddings.shape[0]
        prefix_positions, patch_positions = self._positions(
            (height // self.config.patch_size, width // self.config.patch_size), embeddings.device
        )
        embeddings = embeddings + patch_positions.to(embeddings.dtype)
        if visible_patches is not None:
            index = visible_patches.unsqueeze(-1).expand(-1, -1, embeddings.shape[-1])
            embeddings = torch.gather(embeddings, 1, index)  # (batch, kept, hidden)
        prefix = [
            t.expand(batch, -1, -1)
            for t in (self.cls_token, self.distillation_token, self.register_tokens)
            if t is not None
        ]
        if prefix:
            prefix = torch.cat(prefix, dim=1)
            if prefix_positions is not None:
                prefix = prefix + prefix_positions
            embeddings = torch.cat([prefix.to(embeddings.dtype), embeddings], dim=1)
        return self.dropout(embeddings)  # (batch, prefix + patches, hidden)


class ViTAttention(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, hidden, bias=config.qkv_bias)
        self.k_proj = nn.Linear(hidden, hidden, bias=config.qkv_bias)
        self.v_proj = nn.Linear(hidden, hidden, bias=config.qkv_bias)
        self.o_proj = nn.Linear(hidden, hidden)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, tokens, _ = hidden_states.shape
        shape = (batch, tokens, -1, self.head_dim)
        projected = (self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states))
        query, key, value = (states.view(shape).transpose(1, 2) for states in projected)  # (batch, heads, tokens, dim)

        # Attention maps exist only in the eager computation; the fused kernels never form them (as Falcon in
        # transformers, the call that asks for them runs eagerly rather than returning none).
        implementation = "eager" if kwargs.get("output_attentions") else self.config._attn_implementation
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        output = self.o_proj(output.reshape(batch, tokens, -1))
        return output, weights


class ViTMLP(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))


class ViTLayerScale(nn.Module):
    """Per-channel learned scale of a residual branch (Touvron et al. 2021, "Going deeper with Image Transformers")."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.lambda1 = nn.Parameter(torch.full((config.hidden_size,), float(config.layer_scale_init_value)))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states * self.lambda1


class ViTLayer(GradientCheckpointingLayer):
    """Pre-norm Transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ViTConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = ViTAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = ViTMLP(config)
        use_scale = config.layer_scale_init_value is not None
        self.layer_scale1 = ViTLayerScale(config) if use_scale else nn.Identity()
        self.layer_scale2 = ViTLayerScale(config) if use_scale else nn.Identity()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.drop_path_rate = drop_path_rate

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attended, _ = self.attention(self.layernorm_before(hidden_states), attention_mask, **kwargs)
        attended = self.layer_scale1(self.dropout(attended))
        hidden_states = hidden_states + drop_path(attended, self.drop_path_rate, self.training)
        transformed = self.layer_scale2(self.dropout(self.mlp(self.layernorm_after(hidden_states))))
        return hidden_states + drop_path(transformed, self.drop_path_rate, self.training)


class ViTPreTrainedModel(PreTrainedModel):
    config_class = ViTConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["ViTEmbeddings", "ViTLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # The loss is a mean over the batch; the Trainer then scales it for gradient accumulation itself.
    accepts_loss_kwargs = False
    # transformers' `capture_outputs` records these modules' outputs for `output_hidden_states` (with the first
    # block's input as the embeddings) and `output_attentions`, as in transformers' ViT.
    _can_record_outputs = {"hidden_states": ViTLayer, "attentions": ViTAttention}

    def _init_weights(self, module: nn.Module) -> None:
        # Truncated normal for weights and tokens, zero biases, as timm's and transformers' ViT.
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, ViTEmbeddings):
            for token in (
                module.cls_token,
                module.distillation_token,
                module.register_tokens,
                module.position_embeddings,
            ):
                if token is not None:
                    init.trunc_normal_(token, mean=0.0, std=std)
        elif isinstance(module, ViTLayerScale):
            init.constant_(module.lambda1, self.config.layer_scale_init_value)
        elif isinstance(module, ViTMaskedDecoder):
            init.normal_(module.mask_token, std=std)  # as MAE's `torch.nn.init.normal_(self.mask_token, std=.02)`

    def save_pretrained(self, save_directory, *args, **kwargs):
        """
        As transformers' `save_pretrained`. A classifier's `auto_map` also names `ViTModel` for `AutoModel`:
        transformers records only the saved class, and a repo should load as the bare encoder too.
        """
        if self._auto_class is not None:  # registered for the Auto classes: `auto_map` is written
            encoder = f"{ViTModel.__module__.rsplit('.', 1)[-1]}.{ViTModel.__name__}"
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), "AutoModel": encoder}
        return super().save_pretrained(save_directory, *args, **kwargs)


@dataclass
class ViTModelOutput(BaseModelOutputWithPooling):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, tokens, hidden_size)`):
        Output of the last block, after the final norm for `pooling="cls"` (for `"mean"` the norm follows pooling).
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The feature the classifier reads: the class token, or the normalised mean of the patch tokens.
    """


class ViTModel(ViTPreTrainedModel):
    def __init__(self, config: ViTConfig):
        super().__init__(config)
        self.embeddings = ViTEmbeddings(config)
        # Stochastic depth grows linearly with depth, from 0 to drop_path_rate (as DeiT and timm).
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * index / max(depth - 1, 1) for index in range(depth)]
        self.layers = nn.ModuleList([ViTLayer(config, rate) for rate in rates])
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        visible_patches: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ViTModelOutput:
        r"""
        visible_patches (`torch.LongTensor` of shape `(batch, kept)`, *optional*):
            Indices of the only patches the encoder sees (masked autoencoding); all of them when None.

        `output_hidden_states` and `output_attentions` (flags, or for hidden states a list of indices) are recorded
        by transformers' `capture_outputs` from the modules `_can_record_outputs` names, as in transformers' ViT:
        the hidden states are the embeddings and every block's output, before the final norm.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required: a (batch, channels, height, width) tensor.")
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        hidden_states = self.embeddings(pixel_values, bool(interpolate_pos_encoding), visible_patches)
        for layer in self.layers:
            hidden_states = layer(hidden_states, None, **kwargs)

        if self.config.pooling == "cls":
            hidden_states = self.layernorm(hidden_states)
            pooled = hidden_states[:, 0]
        else:
            pooled = self.layernorm(hidden_states[:, self.config.num_prefix_tokens :].mean(dim=1))
        return ViTModelOutput(last_hidden_state=hidden_states, pooler_output=pooled)


@dataclass
class ViTImageClassifierOutput(ImageClassifierOutput):
    r"""
    logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
        Classification scores; with a distillation head, the average of `cls_logits` and `distillation_logits`.
    cls_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
        Scores of the class-token head, returned when the model has a distillation head.
    distillation_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
        Scores of the distillation-token head (DeiT).
    """

    cls_logits: torch.FloatTensor | None = None
    distillation_logits: torch.FloatTensor | None = None


class ViTForImageClassification(ViTPreTrainedModel):
    def __init__(self, config: ViTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.vit = ViTModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.has_distillation_head = config.use_distillation_token and config.distillation_head
        self.distillation_classifier = (
            nn.Linear(config.hidden_size, config.num_labels) if self.has_distillation_head else None
        )
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ViTImageClassifierOutput:
        r"""
        labels (`torch.Tensor`, *optional*):
            Integer class ids `(batch,)`, or float targets `(batch, num_labels)`: probabilities (MixUp, CutMix, label
            smoothing) or, with `problem_type="multi_label_classification"`, multi-hot vectors.
        """
        outputs = self.vit(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        logits = self.classifier(self.dropout(outputs.pooler_output))
        cls_logits = distillation_logits = None
        if self.has_distillation_head:
            cls_logits = logits
            distillation_logits = self.distillation_classifier(self.dropout(outputs.last_hidden_state[:, 1]))
            # DeiT predicts with the average of both heads; training code reads the two heads separately.
            logits = (cls_logits + distillation_logits) / 2
        loss = None if labels is None else classification_loss(logits, labels, self.config.problem_type)
        return ViTImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cls_logits=cls_logits,
            distillation_logits=distillation_logits,
        )


def random_masking(noise: torch.Tensor, mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Per-sample random masking as MAE (He et al. 2022) and transformers' ViTMAE: the patches with the smallest
    `noise` (batch, patches) stay visible, `int(patches * (1 - mask_ratio))` of them. Returns the visible patches'
    indices (batch, kept), the mask (batch, patches; 1 = masked) and `ids_restore` (batch, patches), which puts the
    patches shuffled as [visible, masked] back in image order.
    """
    batch, patches = noise.shape
    kept = int(patches * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, patches, device=noise.device)
    mask[:, :kept] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_shuffle[:, :kept], mask, ids_restore


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """`(batch, channels, height, width)` images as `(batch, patches, patch_size**2 * channels)`, rows first."""
    batch, channels, height, width = pixel_values.shape
    rows, cols = height // patch_size, width // patch_size
    patches = pixel_values.reshape(batch, channels, rows, patch_size, cols, patch_size)
    patches = torch.einsum("nchpwq->nhwpqc", patches)  # the pixel order of transformers' ViTMAE `patchify`
    return patches.reshape(batch, rows * cols, patch_size**2 * channels)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int], channels: int) -> torch.Tensor:
    """The inverse of `patchify`: `(batch, patches, patch_size**2 * channels)` to `(batch, channels, H, W)`."""
    batch = patches.shape[0]
    images = patches.reshape(batch, grid[0], grid[1], patch_size, patch_size, channels)
    images = torch.einsum("nhwpqc->nchpwq", images)
    return images.reshape(batch, channels, grid[0] * patch_size, grid[1] * patch_size)


def masked_reconstruction_loss(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix_loss: bool
) -> torch.Tensor:
    """
    MAE's loss: the mean squared error of the predicted pixels `logits` against the `target` patches (both
    (batch, patches, pixels)), averaged over the masked patches only (`mask` 1). With `norm_pix_loss` the target is
    each patch normalised by its own mean and variance (eps 1e-6, as MAE).
    """
    if norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    per_patch = ((logits - target) ** 2).mean(dim=-1)  # (batch, patches)
    return (per_patch * mask).sum() / mask.sum()


class ViTMaskedDecoder(nn.Module):
    """
    MAE's light decoder: the encoded visible tokens, projected to `decoder_hidden_size`, with a shared learned mask
    token in place of each masked patch and fixed 2-D sine-cosine positions on the patches, through a few Transformer
    blocks to each patch's pixels. Names as transformers' `ViTMAEDecoder`.
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        decoder_config = copy.deepcopy(config)
        decoder_config.hidden_size = config.decoder_hidden_size
        decoder_config.num_attention_heads = config.decoder_num_attention_heads
        decoder_config.intermediate_size = config.decoder_intermediate_size
        decoder_config.layer_scale_init_value = None
        self.config = config
        self.num_prefix_tokens = config.num_prefix_tokens
        self.grid = (config.image_size // config.patch_size,) * 2
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        self.decoder_layers = nn.ModuleList(
            [ViTLayer(decoder_config) for _ in range(config.decoder_num_hidden_layers)]
        )
        self.decoder_norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.decoder_pred = nn.Linear(config.decoder_hidden_size, config.patch_size**2 * config.num_channels)

    def forward(self, hidden_states: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        # hidden_states: (batch, prefix + kept, hidden); ids_restore: (batch, patches)
        hidden_states = self.decoder_embed(hidden_states)
        prefix, visible = hidden_states[:, : self.num_prefix_tokens], hidden_states[:, self.num_prefix_tokens :]
        batch, patches = ids_restore.shape
        masks = self.mask_token.expand(batch, patches - visible.shape[1], -1).to(visible.dtype)
        patch_tokens = torch.cat([visible, masks], dim=1)  # (batch, patches, decoder_hidden) as [visible, masked]
        index = ids_restore.unsqueeze(-1).expand(-1, -1, patch_tokens.shape[-1])
        patch_tokens = torch.gather(patch_tokens, 1, index)  # back in image order
        # Positions on the patches only: MAE's decoder table has a zero row for the class token.
        positions = sincos_position_embeddings(self.grid, patch_tokens.shape[-1], patch_tokens.device)
        hidden_states = torch.cat([prefix, patch_tokens + positions.to(patch_tokens.dtype)], dim=1)
        for layer in self.decoder_layers:
            hidden_states = layer(hidden_states)
        hidden_states = self.decoder_norm(hidden_states)
        return self.decoder_pred(hidden_states[:, self.num_prefix_tokens :])  # (batch, patches, patch**2 * channels)


@dataclass
class ViTMaskedAutoencoderOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*):
        The mean squared error on the masked patches (normalised pixels with `norm_pix_loss`).
    logits (`torch.FloatTensor` of shape `(batch_size, patches, patch_size**2 * num_channels)`):
        The reconstructed pixels of every patch, in `patchify` order.
    mask (`torch.FloatTensor` of shape `(batch_size, patches)`):
        1 for the masked patches, 0 for the visible ones.
    ids_restore (`torch.LongTensor` of shape `(batch_size, patches)`):
        Puts the patches shuffled as [visible, masked] back in image order.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class ViTForMaskedAutoencoding(ViTPreTrainedModel):
    """
    Masked autoencoding (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"): the encoder, `vit`,
    sees a random `1 - mask_ratio` share of the patches; a light decoder reconstructs the pixels of the others. The
    encoder's weights are named as `ViTForImageClassification`'s, so a saved model fine-tunes as a classifier.
    """

    def __init__(self, config: ViTConfig):
        config.check_masked_autoencoding()
        super().__init__(config)
        self.vit = ViTModel(config)
        self.decoder = ViTMaskedDecoder(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        return_loss: bool = True,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ViTMaskedAutoencoderOutput:
        r"""
        noise (`torch.FloatTensor` of shape `(batch_size, patches)`, *optional*):
            Decides the mask: the patches of smallest noise stay visible. Uniform random when None; fixed, it makes
            the mask deterministic (tests, figures).
        return_loss (`bool`, *optional*, defaults to `True`):
            Whether to compute the loss, which needs no labels. The Trainer reads this argument's default
            (`can_return_loss`, as for CLIP) to know that evaluation has a loss.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required: a (batch, channels, height, width) tensor.")
        config = self.config
        patches = (pixel_values.shape[-2] // config.patch_size) * (pixel_values.shape[-1] // config.patch_size)
        if noise is None:
            noise = torch.rand(pixel_values.shape[0], patches, device=pixel_values.device)
        if noise.shape != (pixel_values.shape[0], patches):
            raise ValueError(
                f"noise of shape {tuple(noise.shape)} does not fit {patches} patches: pass "
                f"({pixel_values.shape[0]}, {patches})."
            )
        visible, mask, ids_restore = random_masking(noise, config.mask_ratio)
        outputs = self.vit(pixel_values, visible_patches=visible, **kwargs)
        latent = outputs.last_hidden_state
        if config.pooling != "cls":
            # The encoder's final norm, on every token: ViTModel applies it after pooling for `pooling="mean"`.
            latent = self.vit.layernorm(latent)
        logits = self.decoder(latent, ids_restore)
        target = patchify(pixel_values.to(logits.dtype), config.patch_size)
        loss = masked_reconstruction_loss(logits, target, mask, config.norm_pix_loss) if return_loss else None
        return ViTMaskedAutoencoderOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            ids_restore=ids_restore,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "ViTForImageClassification",
    "ViTForMaskedAutoencoding",
    "ViTModel",
    "ViTPreTrainedModel",
    "resample_position_embeddings",
    "masked_reconstruction_loss",
    "patchify",
    "random_masking",
    "sincos_position_embeddings",
    "unpatchify",
]
