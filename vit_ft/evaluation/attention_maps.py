"""
Heat maps of where a ViT classifier looks, from its attention: attention rollout, gradient-weighted rollout and the
last block's attention.

The maps are computed from the model's standard `output_attentions` and from config fields alone, so they work on
vit_ft models, on LoRA adapters (peft) and on models loaded with `trust_remote_code=True` where vit-ft is not
installed. This module imports nothing else from vit_ft (tests/evaluation/test_attention_maps.py loads it alone).

```python
from vit_ft.evaluation.attention_maps import attention_maps

maps = attention_maps(model, pixel_values, method="gradient_rollout")  # pixel_values: (batch, 3, H, W)
maps.patches  # (batch, H // patch, W // patch), each map scaled to a maximum of 1
maps.pixels  # (batch, H, W): the same maps upsampled to the image
```
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

METHODS = ("rollout", "gradient_rollout", "last_layer")


@dataclass
class AttentionMaps:
    """
    patches (`torch.Tensor` of shape `(batch, grid_height, grid_width)`):
        One value per image patch, scaled so that each map's maximum is 1 (all zeros when nothing is positive).
    pixels (`torch.Tensor` of shape `(batch, height, width)`):
        `patches` upsampled bilinearly to the input image; pixels right or below the last full patch, which the
        model never sees, are 0.
    logits (`torch.Tensor` of shape `(batch, num_labels)`):
        The model's scores for the images.
    labels (`torch.Tensor` of shape `(batch,)`):
        The class each map explains: the predicted one unless chosen. Only `gradient_rollout` depends on it.
    """

    patches: torch.Tensor
    pixels: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown attention-map method {method!r}: choose among {', '.join(METHODS)}.")


def attention_maps(
    model: nn.Module, pixel_values: torch.Tensor, method: str = "rollout", labels: torch.Tensor | int | None = None
) -> AttentionMaps:
    """
    Where `model` (a vit_ft `ViTForImageClassification`, a `PeftModel` around one, or the same class loaded as
    remote code) looks in `pixel_values` `(batch, channels, height, width)`, of any size the patch grid can be
    interpolated to:

    - `rollout`: attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): each
      layer's attention averaged over heads, plus the identity for the residual connection, rows renormalised, then
      multiplied through the layers.
    - `gradient_rollout`: class-specific (Chefer et al. 2021, "Generic Attention-model Explainability for
      Interpreting Bi-Modal and Encoder-Decoder Transformers"): each layer's attention weighted by the gradient of
      the explained class's logit, its positive part averaged over heads, rolled out as R <- R + A R from R = I.
    - `last_layer`: the last block's attention, averaged over heads.

    Each map is the row of the tokens the classifier reads, over image positions only (class, distillation and
    register tokens are not image positions): the class token; with DeiT's distillation head, the mean of the class
    and distillation tokens' rows, as the logits average both heads; with mean pooling, which has no class token,
    the mean of all image tokens' rows, since the pooled feature is the mean of those tokens.

    `labels` `(batch,)`, or one class id for every image, chooses the class `gradient_rollout` explains (default: the
    predicted one); each must be a class of the model. `pixel_values` are floating point (the image processor's
    output), at least one image of at least one patch; anything else is a ValueError that names it. The model runs in
    eval mode for the call, its mode restored afterwards, and its attention eagerly whatever its kernel: fused kernels
    never form the attention probabilities, so the model computes a call that asks for them eagerly. `rollout` and
    `last_layer` work under `torch.inference_mode()`; `gradient_rollout` turns gradients on for its own forward pass
    and leaves the parameters' `.grad` untouched.
    """
    check_method(method)
    config = model.config
    _check_pixel_values(pixel_values, config)
    labels = _explained_labels(labels, len(pixel_values), config.num_labels)
    with _eval_mode(model):
        if method == "gradient_rollout":
            logits, attentions, gradients, labels = _attentions_and_gradients(model, pixel_values, labels)
            relevance = _gradient_rollout(attentions, gradients)
        else:
            with torch.no_grad():
                outputs = model(pixel_values=pixel_values, output_attentions=True, interpolate_pos_encoding=True)
            logits, attentions = outputs.logits, outputs.attentions
            relevance = _rollout(attentions) if method == "rollout" else attentions[-1].mean(dim=1)
    labels = logits.argmax(-1) if labels is None else labels.to(logits.device)
    grid = (pixel_values.shape[-2] // config.patch_size, pixel_values.shape[-1] // config.patch_size)
    patches = _image_positions(relevance, config, grid)
    return AttentionMaps(patches, _upsample(patches, pixel_values.shape[-2:], config.patch_size), logits, labels)


def _check_pixel_values(pixel_values: torch.Tensor, config) -> None:
    """
    A one-line ValueError for pixels the maps cannot be computed from: integers (0..255 straight from an image, which
    the model would read as if normalised), an empty batch, or images smaller than one patch. This module imports
    nothing from vit_ft, so it cannot share vit_ft.data.transforms.check_pixel_values.
    """
    if not pixel_values.is_floating_point():
        raise ValueError(f"pixel_values are {pixel_values.dtype}, not floating point: pass the images through the "
                         "model's image processor, which scales and normalises them.")  # fmt: skip
    patch, channels = config.patch_size, config.num_channels
    shape = tuple(pixel_values.shape)
    if len(shape) != 4 or shape[0] == 0 or shape[1] != channels or min(shape[2:]) < patch:
        raise ValueError(f"pixel_values of shape {shape}: expected (batch, {channels}, height, width) with at least "
                         f"one image of at least one {patch}x{patch} patch, e.g. the model's ({channels}, "
                         f"{config.image_size}, {config.image_size}); resize the images with the model's image "
                         "processor.")  # fmt: skip


def _explained_labels(labels: torch.Tensor | int | None, batch: int, num_labels: int) -> torch.Tensor | None:
    """`labels` as a `(batch,)` tensor of class ids (one id applies to every image); None stays None."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.ndim == 0:
        labels = labels.expand(batch)  # one class for every image of the batch
    if labels.is_floating_point() or labels.is_complex() or tuple(labels.shape) != (batch,):
        raise ValueError(f"labels of shape {tuple(labels.shape)} and type {labels.dtype}: give one integer class id, "
                         f"or one per image ({batch}).")  # fmt: skip
    outside = sorted({value for value in labels.tolist() if not 0 <= value < num_labels})
    if outside:
        raise ValueError(f"labels {outside} are not classes of the model, whose ids run from 0 to {num_labels - 1}.")
    return labels


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """
    The model in eval mode, put back in its own mode after. Its attention kernel is left as it is: a call with
    `output_attentions` computes attention eagerly, the one way that forms the probabilities, whatever kernel the
    model's other calls use (every version of vit_ft's model file does).
    """
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _attentions_and_gradients(
    model: nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], torch.Tensor]:
    """
    Logits, every layer's attention probabilities `(batch, heads, tokens, tokens)`, the gradients of the explained
    classes' logits with respect to them, and the explained classes. The attentions `output_attentions` returns are
    the tensors the forward pass used, so autograd reaches them; the input requires grad so that a model whose
    parameters are all frozen still builds the graph.
    """
    # Out of inference mode too: a caller's `torch.inference_mode()` would otherwise keep autograd off.
    with torch.inference_mode(False), torch.enable_grad():
        pixels = pixel_values.detach().clone().requires_grad_(True)
        outputs = model(pixel_values=pixels, output_attentions=True, interpolate_pos_encoding=True)
        logits = outputs.logits
        if labels is None:
            labels = logits.argmax(-1)
        labels = torch.as_tensor(labels, device=logits.device).reshape(-1)
        explained = logits.gather(1, labels[:, None]).sum()  # images are independent: one backward for the batch
        # autograd.grad, not backward: the model's parameters must not accumulate gradients.
        gradients = torch.autograd.grad(explained, outputs.attentions)
    return logits.detach(), tuple(a.detach() for a in outputs.attentions), gradients, labels


def _with_residual(attention: torch.Tensor) -> torch.Tensor:
    """Head-mean attention `(batch, tokens, tokens)` plus the identity of the residual path, rows summing to 1."""
    mixed = attention + torch.eye(attention.shape[-1], dtype=attention.dtype, device=attention.device)
    return mixed / mixed.sum(dim=-1, keepdim=True)


def _rollout(attentions: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Abnar & Zuidema's rollout: A_L ... A_1, each A the head mean with the residual identity, `(batch, T, T)`."""
    rolled = None
    for attention in attentions:  # (batch, heads, tokens, tokens), first layer first
        layer = _with_residual(attention.float().mean(dim=1))
        rolled = layer if rolled is None else layer @ rolled
    return rolled


def _gradient_rollout(attentions: tuple[torch.Tensor, ...], gradients: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Chefer et al.'s rule: R = I, then R <- R + mean_heads((grad * A)+) R for each layer, first layer first."""
    first = attentions[0]
    tokens = first.shape[-1]
    relevance = torch.eye(tokens, device=first.device).expand(first.shape[0], tokens, tokens)
    for attention, gradient in zip(attentions, gradients, strict=True):
        weighted = (gradient.float() * attention.float()).clamp(min=0).mean(dim=1)  # (batch, tokens, tokens)
        relevance = relevance + weighted @ relevance
    return relevance


def _image_positions(relevance: torch.Tensor, config, grid: tuple[int, int]) -> torch.Tensor:
    """
    The rows of the tokens the classifier reads, averaged, over the image positions of `relevance`
    `(batch, tokens, tokens)`, as `(batch, grid_h, grid_w)` maps scaled to a maximum of 1.
    """
    prefix = config.num_prefix_tokens  # class, distillation, registers, in that order, before the patches
    if relevance.shape[-1] != prefix + grid[0] * grid[1]:
        raise ValueError(f"The attention covers {relevance.shape[-1]} tokens, not the {prefix} prefix tokens and "
                         f"{grid[0]}x{grid[1]} patches of these images: check the config's patch_size.")  # fmt: skip
    if config.pooling == "mean":
        rows = relevance[:, prefix:]  # every image token: the pooled feature is their mean
    elif config.use_distillation_token and config.distillation_head:
        rows = relevance[:, :2]  # class and distillation tokens: the logits average their heads
    else:
        rows = relevance[:, :1]  # the class token
    maps = rows.mean(dim=1)[:, prefix:].clamp(min=0).reshape(-1, *grid)  # (batch, grid_h, grid_w)
    peak = maps.flatten(1).amax(dim=1).clamp(min=torch.finfo(maps.dtype).tiny)
    return maps / peak[:, None, None]


def _upsample(patches: torch.Tensor, size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """`(batch, grid_h, grid_w)` maps bilinearly to the pixels the patches cover, zero beyond them, `(batch, H, W)`."""
    covered = (patches.shape[1] * patch_size, patches.shape[2] * patch_size)
    pixels = nn.functional.interpolate(patches[:, None], size=covered, mode="bilinear", align_corners=False)[:, 0]
    return nn.functional.pad(pixels, (0, size[1] - covered[1], 0, size[0] - covered[0]))
