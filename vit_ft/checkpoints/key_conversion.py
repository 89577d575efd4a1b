"""Pure functions that map transformers' and timm's ViT state dicts and configs onto vit_ft's names.

transformers' `register_checkpoint_conversion_mapping` does not fit these renames: a mapping registered for `vit_ft`
would also be reverted by every `save_pretrained` (transformers saves in the layout a model was loaded from, and
applies the registered mapping to models built from scratch too), writing transformers' names under model type
`vit_ft`, which the remote code and older vit_ft versions cannot read. Converting here keeps saved files in vit_ft's
own layout.
"""

import re

import torch

# transformers ViT/DeiT before 5.9 (most Hub checkpoints, e.g. google/vit-base-patch16-224-in21k) nest each block
# as `encoder.layer.N.attention.attention.query`; 5.9 and later use vit_ft's own names (`layers.N.attention.q_proj`).
_LEGACY_TRANSFORMERS_RENAMES = [
    (re.compile(r"^encoder\.layer\.(\d+)\."), r"layers.\1."),
    (re.compile(r"\.attention\.attention\.query\."), ".attention.q_proj."),
    (re.compile(r"\.attention\.attention\.key\."), ".attention.k_proj."),
    (re.compile(r"\.attention\.attention\.value\."), ".attention.v_proj."),
    (re.compile(r"\.attention\.output\.dense\."), ".attention.o_proj."),
    (re.compile(r"\.intermediate\.dense\."), ".mlp.fc1."),
    (re.compile(r"\.output\.dense\."), ".mlp.fc2."),
]
_TRANSFORMERS_HEADS = {"classifier": "classifier", "cls_classifier": "classifier"}
_TRANSFORMERS_CONFIG_KEYS = [
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "qkv_bias",
    "layer_norm_eps",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "initializer_range",
    "id2label",
    "label2id",
    "problem_type",
]
TRANSFORMERS_MODEL_TYPES = ("vit", "deit", "vit_mae")
# MAE's pixel decoder (He et al. 2022): pretraining only; fine-tuning and features read the encoder alone.
MAE_DECODER_PREFIX = "decoder."

_TIMM_RENAMES = [
    (re.compile(r"^cls_token$"), "vit.embeddings.cls_token"),
    (re.compile(r"^dist_token$"), "vit.embeddings.distillation_token"),
    (re.compile(r"^reg_token$"), "vit.embeddings.register_tokens"),
    (re.compile(r"^pos_embed$"), "vit.embeddings.position_embeddings"),
    (re.compile(r"^patch_embed\.proj\."), "vit.embeddings.patch_embeddings.projection."),
    (re.compile(r"^blocks\.(\d+)\.norm1\."), r"vit.layers.\1.layernorm_before."),
    (re.compile(r"^blocks\.(\d+)\.norm2\."), r"vit.layers.\1.layernorm_after."),
    (re.compile(r"^blocks\.(\d+)\.attn\.proj\."), r"vit.layers.\1.attention.o_proj."),
    (re.compile(r"^blocks\.(\d+)\.mlp\.fc([12])\."), r"vit.layers.\1.mlp.fc\2."),
    (re.compile(r"^blocks\.(\d+)\.ls([12])\.gamma$"), r"vit.layers.\1.layer_scale\2.lambda1"),
    (re.compile(r"^(norm|fc_norm)\."), "vit.layernorm."),
    (re.compile(r"^head\."), "classifier."),
    (re.compile(r"^head_dist\."), "distillation_classifier."),
]
_TIMM_FUSED_QKV = re.compile(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def config_from_transformers(source: dict) -> dict:
    """
    ViTConfig fields for a transformers `vit`, `deit` or `vit_mae` config dict (the content of its `config.json`).

    MAE's fixed 2-D sine-cosine positions load as a `learned` table holding the checkpoint's own values (its class
    position a row of zeros): vit_ft's `sincos` lays the channels out as [sin_h, cos_h, sin_w, cos_w], MAE as
    [sin_w, cos_w, sin_h, cos_h] (transformers' modeling_vit_mae.py keeps the original code's swapped halves), so only
    the table itself gives MAE's numbers. MAE's own fine-tuning trains that table too (its models_vit.py loads it into
    timm's learnable `pos_embed`) and resizes it bicubically, as vit_ft resizes a learned table. The decoder's fields
    (`decoder_*`, `mask_ratio`, `norm_pix_loss`) are left out with the decoder.
    """
    fields = {key: source[key] for key in _TRANSFORMERS_CONFIG_KEYS if key in source}
    for key in ("image_size", "patch_size"):
        value = fields.get(key)
        if isinstance(value, (list, tuple)):
            if len(set(value)) != 1:
                raise ValueError(f"{key}={value} is not square; vit_ft supports square images and patches only.")
            fields[key] = value[0]
    if source.get("model_type") == "deit":
        # Every transformers DeiT has the distillation token; only the `WithTeacher` class has a head on it.
        fields["use_distillation_token"] = True
        fields["distillation_head"] = "DeiTForImageClassificationWithTeacher" in (source.get("architectures") or [])
    return fields


def convert_transformers_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list]:
    """
    Renames a transformers ViT/DeiT/ViTMAE state dict (either key layout, with or without the `vit.`/`deit.` prefix)
    to vit_ft's names. Returns the new state dict and the source keys that were dropped (pooler, mask token, MAE's
    decoder).
    """
    converted, dropped = {}, []
    for key, tensor in state_dict.items():
        if key.startswith(MAE_DECODER_PREFIX):
            dropped.append(key)
            continue
        head, _, rest = key.partition(".")
        if head in _TRANSFORMERS_HEADS:
            converted[f"{_TRANSFORMERS_HEADS[head]}.{rest}"] = tensor
            continue
        if head == "distillation_classifier":
            converted[key] = tensor
            continue
        body = rest if head in ("vit", "deit") else key
        if body.startswith("pooler.") or body == "embeddings.mask_token":
            dropped.append(key)
            continue
        for pattern, replacement in _LEGACY_TRANSFORMERS_RENAMES:
            body = pattern.sub(replacement, body)
        converted[f"vit.{body}"] = tensor
    return converted, dropped


def convert_timm_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Renames a timm `VisionTransformer` (or distilled DeiT) state dict to vit_ft's names and splits the fused
    `qkv` projection into `q_proj`, `k_proj`, `v_proj`. Keys of timm features vit_ft does not have raise an error.
    """
    converted, unsupported = {}, []
    for key, tensor in state_dict.items():
        fused = _TIMM_FUSED_QKV.match(key)
        if fused:
            layer, kind = fused.groups()
            # timm stacks the projections as rows [q; k; v]: (3 * hidden, hidden) weights, (3 * hidden,) biases.
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                converted[f"vit.layers.{layer}.attention.{name}.{kind}"] = part.contiguous()
            continue
        for pattern, replacement in _TIMM_RENAMES:
            new_key, count = pattern.subn(replacement, key)
            if count:
                converted[new_key] = tensor
                break
        else:
            unsupported.append(key)
    if unsupported:
        raise ValueError(
            f"These timm weights use features vit_ft does not implement: {', '.join(unsupported[:8])}"
            f"{' ...' if len(unsupported) > 8 else ''}. vit_ft converts timm VisionTransformer models with class, "
            "distillation and register tokens, learned positions, LayerScale and token or average pooling."
        )
    return converted


__all__ = [
    "MAE_DECODER_PREFIX",
    "TRANSFORMERS_MODEL_TYPES",
    "config_from_transformers",
    "convert_timm_state_dict",
    "convert_transformers_state_dict",
]
