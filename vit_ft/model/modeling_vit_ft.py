"""The vit_ft Vision Transformer (Dosovitskiy et al. 2021) with DeiT's distillation token (Touvron et al. 2021),
registers (Darcet et al. 2024), LayerScale, stochastic depth and fixed sine-cosine positions.

This file ships as remote code next to saved models: it imports only torch, transformers and its two siblings
(`configuration_vit_ft`, `state_dict_conversion`), which are copied with it.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules import module as torch_module
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, load_state_dict
from transformers.utils import cached_file, logging

from .configuration_vit_ft import ViTConfig
from .state_dict_conversion import (
    TRANSFORMERS_MODEL_TYPES,
    config_from_transformers,
    convert_transformers_state_dict,
    resample_position_embeddings,
)

logger = logging.get_logger(__name__)

_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")


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


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drops a whole residual branch per sample, scaling the kept ones by 1 / keep_prob."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1.0 - drop_prob
    mask = hidden_states.new_empty((hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)).bernoulli_(keep_prob)
    return hidden_states * mask / keep_prob


# The activations ViTMLP can apply in place (without autograd), by `approximate` of the in-place GELU that gives the
# same bits as ACT2FN's module.
_INPLACE_GELU_APPROXIMATION = {"gelu": "none", "gelu_pytorch_tanh": "tanh"}


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

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
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
        prefix = [t.expand(batch, -1, -1) for t in (self.cls_token, self.distillation_token, self.register_tokens)
                  if t is not None]  # fmt: skip
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

    def _project_qkv(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        projections = (self.q_proj, self.k_proj, self.v_proj)
        # LoRA, quantised or otherwise wrapped projections run as the modules they are. So does inference on the CPU:
        # the stacked weights would be a fresh allocation per call, and the page faults that follow cost more than
        # the single GEMM saves (docs/benchmarks.md). GPUs reuse memory through torch's caching allocator.
        cpu_inference = not torch.is_grad_enabled() and hidden_states.device.type == "cpu"
        if cpu_inference or any(type(projection) is not nn.Linear for projection in projections):
            return tuple(projection(hidden_states) for projection in projections)
        # One GEMM over the stacked weights (timm's fused qkv) runs about 15% faster than three, forward and
        # backward, and keeps q_proj/k_proj/v_proj as separate modules for peft to target.
        weight = torch.cat([projection.weight for projection in projections])
        bias = torch.cat([projection.bias for projection in projections]) if self.q_proj.bias is not None else None
        return nn.functional.linear(hidden_states, weight, bias).chunk(3, dim=-1)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, tokens, _ = hidden_states.shape
        shape = (batch, tokens, -1, self.head_dim)
        query, key, value = (
            states.view(shape).transpose(1, 2) for states in self._project_qkv(hidden_states)
        )  # each (batch, heads, tokens, head_dim)

        # Attention maps exist only in the eager computation; the fused kernels never materialise them.
        implementation = "eager" if output_attentions else self.config._attn_implementation
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention(
            self,
            query,
            key,
            value,
            None,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            is_causal=False,
        )
        output = self.o_proj(output.reshape(batch, tokens, -1))
        return output, weights


class ViTMLP(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        # The activation module and its class's forward as built, kept so that an activation replaced or patched
        # later (another module, a hub kernel) is run as it is rather than bypassed by the in-place GELU.
        approximation = _INPLACE_GELU_APPROXIMATION.get(config.hidden_act)
        self._inplace_gelu = (self.activation_fn, type(self.activation_fn).forward, approximation)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden_states)))

    def _forward_overwriting(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`forward` with the GELU applied in place on fc1's output, for a caller that knows nothing else holds it."""
        hidden_states = self.fc1(hidden_states)
        built, built_forward, approximation = self._inplace_gelu
        if approximation is None or self.activation_fn is not built or type(built).forward is not built_forward:
            return self.fc2(self.activation_fn(hidden_states))
        return self.fc2(torch.ops.aten.gelu_(hidden_states, approximate=approximation))


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
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        overwrite = self._can_overwrite()
        attended, weights = self.attention(self.layernorm_before(hidden_states), output_attentions)
        attended = self.layer_scale1(self.dropout(attended))
        hidden_states = _residual(hidden_states, drop_path(attended, self.drop_path_rate, self.training), overwrite)
        transformed = self._mlp(self.layernorm_after(hidden_states), overwrite)
        transformed = self.layer_scale2(self.dropout(transformed))
        hidden_states = _residual(hidden_states, drop_path(transformed, self.drop_path_rate, self.training), overwrite)
        return hidden_states, weights

    def _mlp(self, hidden_states: torch.Tensor, overwrite: bool) -> torch.Tensor:
        # The overwriting forward is called directly: with no hook inside the block, `__call__` would add nothing
        # but its overhead. A replaced or compiled MLP goes through `__call__` as usual.
        mlp = self.mlp
        if overwrite and type(mlp) is ViTMLP and mlp._compiled_call_impl is None:
            return mlp._forward_overwriting(hidden_states)
        return mlp(hidden_states)

    def _can_overwrite(self) -> bool:
        """
        Whether the MLP's activation and the residual sums may write into the tensors this block has just made
        (fc1's output, the branches' outputs), saving three activation-sized allocations per block: on the CPU these
        are fresh pages the kernel must fault in and zero, which costs more than the arithmetic (docs/benchmarks.md).
        Only without autograd, which would need the overwritten values for the backward, and only while no hook inside
        the block (or global), nor a forward replaced on an instance (accelerate's `add_hook_to_module`), can have
        kept one of those tensors; other ways of watching tensors (dispatch modes) are not detected. The block's input
        and output are never overwritten, so `output_hidden_states` and hooks on whole blocks see the same values
        either way (and keep the fast path).
        """
        if torch.is_grad_enabled() or torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
            return False
        return not any(_holds_hooks(child) for child in self._modules.values())


def _holds_hooks(module: nn.Module | None) -> bool:
    """
    Whether `module` or a module inside it has a forward (pre-)hook or a forward replaced on the instance (walks
    `_modules` as `modules()` would, faster).
    """
    if module is None:
        return False
    if module._forward_hooks or module._forward_pre_hooks or "forward" in module.__dict__:
        return True
    return any(_holds_hooks(child) for child in module._modules.values())


def _residual(hidden_states: torch.Tensor, branch: torch.Tensor, overwrite: bool) -> torch.Tensor:
    """`hidden_states + branch`, written into `branch` when allowed and the result keeps its dtype and shape."""
    if overwrite and branch.dtype == hidden_states.dtype and branch.shape == hidden_states.shape:
        return branch.add_(hidden_states)
    return hidden_states + branch


def _read_json(path_or_id: str, filename: str, hub_kwargs: dict) -> dict | None:
    resolved = cached_file(path_or_id, filename, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if resolved is None:
        return None
    with open(resolved, encoding="utf-8") as handle:
        return json.load(handle)


def _load_checkpoint_weights(path_or_id: str, hub_kwargs: dict) -> dict[str, torch.Tensor]:
    """Reads a checkpoint's weights: `model.safetensors`, a sharded safetensors index or `pytorch_model.bin`."""
    for filename in ("model.safetensors", "pytorch_model.bin"):
        resolved = cached_file(path_or_id, filename, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if resolved is not None:
            return load_state_dict(resolved)  # .bin files are read with weights_only=True
    index = _read_json(path_or_id, "model.safetensors.index.json", hub_kwargs)
    if index is None:
        raise OSError(f"{path_or_id} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin.")
    weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        weights.update(load_state_dict(cached_file(path_or_id, shard, **hub_kwargs)))
    return weights


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
            for token in (module.cls_token, module.distillation_token, module.register_tokens,
                          module.position_embeddings):  # fmt: skip
                if token is not None:
                    init.trunc_normal_(token, mean=0.0, std=std)
        elif isinstance(module, ViTLayerScale):
            init.constant_(module.lambda1, self.config.layer_scale_init_value)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """
        As transformers' `save_pretrained`, with the remote code and `auto_map` of vit_ft's own class also when a
        wrapper swapped the instance's class: FSDP2's `fully_shard` makes it a subclass generated inside torch. A
        classifier's `auto_map` also names `ViTModel` for `AutoModel`: transformers records only the saved class, and
        a repo should load as the bare encoder too.
        """
        if self._auto_class is not None:  # registered for the Auto classes: `auto_map` is written
            encoder = f"{ViTModel.__module__.rsplit('.', 1)[-1]}.{ViTModel.__name__}"
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), "AutoModel": encoder}
        own = next(klass for klass in type(self).__mro__ if klass.__module__ == __name__)
        if own is type(self):
            return super().save_pretrained(save_directory, *args, **kwargs)
        wrapped = type(self)
        # The generated class only adds FSDP's methods, which saving does not use; its state-dict hooks stay.
        self.__class__ = own
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.__class__ = wrapped

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """
        Loads a vit_ft checkpoint, or converts a transformers ViT/DeiT checkpoint (`model_type` `vit` or `deit`, old
        or current key layout) on the fly. Passing another `image_size` than the checkpoint's resizes the learned
        position embeddings permanently (bicubic). Other keyword arguments behave as in transformers.
        """
        if pretrained_model_name_or_path is None:
            return super().from_pretrained(None, *model_args, **kwargs)
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        source = _read_json(str(pretrained_model_name_or_path), "config.json", hub_kwargs)
        if source is None:
            raise OSError(f"{pretrained_model_name_or_path} has no config.json: it is not a model checkpoint.")
        model_type = source.get("model_type")
        if model_type not in (cls.config_class.model_type, *TRANSFORMERS_MODEL_TYPES):
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a {model_type!r} model. vit_ft loads vit_ft, transformers "
                "'vit' and 'deit' checkpoints; convert timm weights with `vit-ft convert --from timm`."
            )
        config = kwargs.get("config")
        requested_size = config.image_size if isinstance(config, PretrainedConfig) else kwargs.get("image_size")
        if model_type == cls.config_class.model_type and requested_size in (None, source["image_size"]):
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        return cls._from_converted(pretrained_model_name_or_path, source, hub_kwargs, *model_args, **kwargs)

    @classmethod
    def _from_converted(cls, path_or_id, source: dict, hub_kwargs: dict, *model_args, **kwargs):
        """Builds the model from a state dict converted to vit_ft's names and image size."""
        for key in hub_kwargs:
            kwargs.pop(key)
        state_dict = _load_checkpoint_weights(str(path_or_id), hub_kwargs)
        if source["model_type"] in TRANSFORMERS_MODEL_TYPES:
            state_dict, dropped = convert_transformers_state_dict(state_dict)
            fields = config_from_transformers(source)
            if dropped:
                logger.warning(f"Converting {path_or_id}: dropped {len(dropped)} weights vit_ft does not use "
                               f"(pooler, mask token): {', '.join(dropped)}.")  # fmt: skip
        else:
            fields = {k: v for k, v in source.items() if k not in ("model_type", "transformers_version", "auto_map")}
        config = kwargs.pop("config", None)
        if not isinstance(config, PretrainedConfig):
            probe = cls.config_class(**fields)
            overrides = {key: kwargs.pop(key) for key in list(kwargs)
                         if hasattr(probe, key) and key != "attn_implementation"}  # fmt: skip
            if "num_labels" in overrides and "id2label" not in overrides:
                fields = {k: v for k, v in fields.items() if k not in ("id2label", "label2id")}
            config = cls.config_class(**{**fields, **overrides})
        table = state_dict.get("vit.embeddings.position_embeddings")
        if table is not None and config.position_embedding_type == "learned":
            num_prefix = config.num_prefix_tokens if config.prefix_position_embeddings else 0
            grid = (config.image_size // config.patch_size,) * 2
            state_dict["vit.embeddings.position_embeddings"] = resample_position_embeddings(table, num_prefix, grid)
        config.name_or_path = str(path_or_id)
        return super().from_pretrained(None, *model_args, config=config, state_dict=state_dict, **kwargs)


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

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ViTModelOutput | tuple:
        if pixel_values is None:
            raise ValueError("pixel_values is required: a (batch, channels, height, width) tensor.")
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        hidden_states = self.embeddings(pixel_values, interpolate_pos_encoding=bool(interpolate_pos_encoding))
        all_hidden_states = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, weights = layer(hidden_states, output_attentions)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_attentions:
                all_attentions.append(weights)

        if self.config.pooling == "cls":
            hidden_states = self.layernorm(hidden_states)
            pooled = hidden_states[:, 0]
        else:
            pooled = self.layernorm(hidden_states[:, self.config.num_prefix_tokens :].mean(dim=1))
        output = ViTModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=pooled,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output.to_tuple() if return_dict is False else output


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

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ViTImageClassifierOutput | tuple:
        r"""
        labels (`torch.Tensor`, *optional*):
            Integer class ids `(batch,)`, or float targets `(batch, num_labels)`: probabilities (MixUp, CutMix, label
            smoothing) or, with `problem_type="multi_label_classification"`, multi-hot vectors.
        """
        outputs = self.vit(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        cls_logits = distillation_logits = None
        if self.has_distillation_head:
            cls_logits = logits
            distillation_logits = self.distillation_classifier(self.dropout(outputs.last_hidden_state[:, 1]))
            # DeiT predicts with the average of both heads; training code reads the two heads separately.
            logits = (cls_logits + distillation_logits) / 2
        loss = None if labels is None else classification_loss(logits, labels, self.config.problem_type)
        output = ViTImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cls_logits=cls_logits,
            distillation_logits=distillation_logits,
        )
        return output.to_tuple() if return_dict is False else output


__all__ = ["ViTForImageClassification", "ViTModel", "ViTPreTrainedModel", "sincos_position_embeddings"]
