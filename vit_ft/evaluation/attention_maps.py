"""
Heat maps of a ViT classifier: the evidence for a class (AttnLRP relevance, Chefer et al.'s transformer attribution,
gradient-weighted rollout) and where information flows (attention rollout, the last block's attention).

The maps are computed from the model's standard outputs (`output_attentions`, `output_hidden_states`), forward hooks
on the modules named as in vit_ft's model file (`layers.N.attention.q_proj`, `mlp.activation_fn`, the `LayerNorm`s)
and config fields alone, so they work on vit_ft models, on LoRA adapters (peft) and on models loaded with
`trust_remote_code=True` where vit-ft is not installed. This module imports nothing else from vit_ft
(tests/evaluation/test_attention_maps.py loads it alone). docs/evaluation.md says what each method shows and how
each fared on images with a distractor.

```python
from vit_ft.evaluation.attention_maps import attention_maps

maps = attention_maps(model, pixel_values, method="attnlrp")  # pixel_values: (batch, 3, H, W)
maps.patches  # (batch, H // patch, W // patch), each map scaled to a maximum of 1
maps.pixels  # (batch, H, W): the same maps upsampled to the image
```
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

METHODS = ("rollout", "gradient_rollout", "last_layer", "attnlrp", "transformer_attribution")
# The methods that explain one class (the `labels` of `attention_maps`); the others map the model's flow, whatever
# the class.
CLASS_SPECIFIC = ("gradient_rollout", "attnlrp", "transformer_attribution")
# The method `vit-ft explain` and a run's attention_maps.png use: the one that found the evidence, and not a bright
# class-independent distractor, most often (docs/evaluation.md, tests/evaluation/test_attention_proof.py).
DEFAULT_METHOD = "attnlrp"


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
        The class each map explains: the predicted one unless chosen. Only the `CLASS_SPECIFIC` methods depend on
        it.
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
    Heat maps of `model` (a vit_ft `ViTForImageClassification`, a `PeftModel` around one, or the same class loaded
    as remote code) on `pixel_values` `(batch, channels, height, width)`, of any size the patch grid can be
    interpolated to. The class-specific methods say which patches are evidence for a class:

    - `attnlrp`: AttnLRP (Achtibat et al. 2024, "AttnLRP: Attention-Aware Layer-wise Relevance Propagation for
      Transformers"): the explained class's logit is propagated back to the first block's input tokens as a
      gradient with LRP's rules (identity rule through the MLP's activation and the LayerNorms' division by their
      standard deviation, uniform rule through the two products of attention, softmax and linear layers as they
      are), then multiplied by the tokens: each patch's relevance.
    - `transformer_attribution`: Chefer et al. 2021 (CVPR, "Transformer Interpretability Beyond Attention
      Visualization"): each layer's attention weighted by both its gradient and its relevance (computed with
      AttnLRP's rules), its positive part averaged over heads, rolled out as R <- R + A R from R = I.
    - `gradient_rollout`: Chefer et al. 2021 (ICCV, "Generic Attention-model Explainability for Interpreting
      Bi-Modal and Encoder-Decoder Transformers"): each layer's attention weighted by the gradient of the explained
      class's logit, its positive part averaged over heads, rolled out as R <- R + A R from R = I.

    The others show where information flows, the same for every class:

    - `rollout`: attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): each
      layer's attention averaged over heads, plus the identity for the residual connection, rows renormalised, then
      multiplied through the layers.
    - `last_layer`: the last block's attention, averaged over heads.

    A map from attention is the row of the tokens the classifier reads, over image positions only (class,
    distillation and register tokens are not image positions): the class token; with DeiT's distillation head, the
    mean of the class and distillation tokens' rows, as the logits average both heads; with mean pooling, which has
    no class token, the mean of all image tokens' rows, since the pooled feature is the mean of those tokens.
    `attnlrp`'s map is the relevance of the image tokens themselves. Negative values (evidence against the class)
    count as 0.

    `labels` `(batch,)`, or one class id for every image, chooses the class the `CLASS_SPECIFIC` methods explain
    (default: the predicted one); each must be a class of the model. `pixel_values` are floating point (the image
    processor's output), at least one image of at least one patch; anything else is a ValueError that names it. The
    model runs in eval mode for the call, its mode restored afterwards, and its attention eagerly whatever its kernel:
    fused kernels never form the attention probabilities, so the model computes a call that asks for them eagerly.
    `rollout` and `last_layer` work under `torch.inference_mode()`; the class-specific methods turn gradients on for
    their own forward passes and leave the parameters' `.grad` untouched.
    """
    check_method(method)
    config = model.config
    _check_pixel_values(pixel_values, config)
    labels = _explained_labels(labels, len(pixel_values), config.num_labels)
    grid = (pixel_values.shape[-2] // config.patch_size, pixel_values.shape[-1] // config.patch_size)
    with _eval_mode(model):
        if method in CLASS_SPECIFIC:
            # gradient_rollout weighs attention by its gradient; the others need LRP's relevance, and
            # transformer_attribution both.
            plain = _backward(model, pixel_values, labels, lrp=False) if method != "attnlrp" else None
            lrp = _backward(model, pixel_values, labels, lrp=True) if method != "gradient_rollout" else None
            logits, labels = (plain or lrp).logits, (plain or lrp).labels
            if method == "attnlrp":
                relevance = (lrp.embeddings * lrp.embedding_gradients).sum(dim=-1)  # (batch, tokens)
            else:
                # The rollout weighs each attention A by `weights` * A: the gradient, or for transformer_attribution
                # the gradient times A's relevance (A times its LRP gradient).
                weights = plain.attention_gradients
                if method == "transformer_attribution":
                    weights = tuple(g * lrp_g for g, lrp_g in zip(weights, lrp.attention_gradients, strict=True))
                relevance = _classifier_rows(_gradient_rollout(plain.attentions, weights), config)
        else:
            with torch.no_grad():
                outputs = model(pixel_values=pixel_values, output_attentions=True, interpolate_pos_encoding=True)
            logits, attentions = outputs.logits, outputs.attentions
            flow = _rollout(attentions) if method == "rollout" else attentions[-1].mean(dim=1)
            relevance = _classifier_rows(flow, config)
    labels = logits.argmax(-1) if labels is None else labels.to(logits.device)
    patches = _image_positions(relevance, config, grid)
    return AttentionMaps(patches, _upsample(patches, pixel_values.shape[-2:], config.patch_size), logits, labels)


def _check_pixel_values(pixel_values: torch.Tensor, config) -> None:
    """
    A one-line ValueError for pixels the maps cannot be computed from: integers (0..255 straight from an image, which
    the model would read as if normalised), an empty batch, or images smaller than one patch. This module imports
    nothing from vit_ft, so it cannot share vit_ft.data.transforms.check_pixel_values.
    """
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values are {pixel_values.dtype}, not floating point: pass the images through the "
            "model's image processor, which scales and normalises them."
        )
    patch, channels = config.patch_size, config.num_channels
    shape = tuple(pixel_values.shape)
    if len(shape) != 4 or shape[0] == 0 or shape[1] != channels or min(shape[2:]) < patch:
        raise ValueError(
            f"pixel_values of shape {shape}: expected (batch, {channels}, height, width) with at least "
            f"one image of at least one {patch}x{patch} patch, e.g. the model's ({channels}, "
            f"{config.image_size}, {config.image_size}); resize the images with the model's image "
            "processor."
        )


def _explained_labels(labels: torch.Tensor | int | None, batch: int, num_labels: int) -> torch.Tensor | None:
    """`labels` as a `(batch,)` tensor of class ids (one id applies to every image); None stays None."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.ndim == 0:
        labels = labels.expand(batch)  # one class for every image of the batch
    if labels.is_floating_point() or labels.is_complex() or tuple(labels.shape) != (batch,):
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} and type {labels.dtype}: give one integer class id, "
            f"or one per image ({batch})."
        )
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


@dataclass
class _Backward:
    """One forward and backward pass: logits, explained labels, every layer's attention probabilities
    `(batch, heads, tokens, tokens)`, the first block's input tokens `(batch, tokens, hidden)` (LRP only), and the
    gradients of the explained logits with respect to both."""

    logits: torch.Tensor
    labels: torch.Tensor
    attentions: tuple[torch.Tensor, ...]
    attention_gradients: tuple[torch.Tensor, ...]
    embeddings: torch.Tensor | None = None
    embedding_gradients: torch.Tensor | None = None


def _backward(model: nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor | None, lrp: bool) -> _Backward:
    """
    The gradients of the explained classes' logits, plain or (`lrp`) with AttnLRP's rules, so that a tensor times
    its gradient is its relevance. The attentions `output_attentions` returns and the first block's input
    (`output_hidden_states[0]`) are the tensors the forward pass used, so autograd reaches them; the input requires
    grad so that a model whose parameters are all frozen still builds the graph.
    """
    # Out of inference mode too: a caller's `torch.inference_mode()` would otherwise keep autograd off.
    with torch.inference_mode(False), torch.enable_grad(), _lrp_rules(model) if lrp else contextlib.nullcontext():
        pixels = pixel_values.detach().clone().requires_grad_(True)
        outputs = model(
            pixel_values=pixels, output_attentions=True, output_hidden_states=lrp, interpolate_pos_encoding=True
        )
        logits = outputs.logits
        if labels is None:
            labels = logits.argmax(-1)
        labels = torch.as_tensor(labels, device=logits.device).reshape(-1)
        explained = logits.gather(1, labels[:, None]).sum()  # images are independent: one backward for the batch
        inputs = (*outputs.attentions, outputs.hidden_states[0]) if lrp else outputs.attentions
        # autograd.grad, not backward: the model's parameters must not accumulate gradients.
        gradients = torch.autograd.grad(explained, inputs)
    layers = len(outputs.attentions)
    embeddings = outputs.hidden_states[0].detach() if lrp else None
    return _Backward(
        logits.detach(),
        labels,
        tuple(a.detach() for a in outputs.attentions),
        gradients[:layers],
        embeddings,
        gradients[layers] if lrp else None,
    )


def _keep_value_scale_gradient(tensor: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """`tensor`'s value, with `scale` times its gradient flowing back into it."""
    return tensor.detach() + (tensor - tensor.detach()) * scale


def _uniform_rule(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    # AttnLRP's uniform rule for a product of two inputs (queries and keys; attention and values): each input gets
    # half the relevance, where plain gradient times input would credit the product's relevance to both in full.
    return _keep_value_scale_gradient(output, 0.5)


def _uniform_rule_on_input(module: nn.Module, args: tuple) -> tuple:
    # o_proj's input is attention times values: halving its gradient halves what reaches both.
    return (_keep_value_scale_gradient(args[0], 0.5), *args[1:])


def _identity_rule(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    # AttnLRP's identity rule for an element-wise activation: relevance passes through unchanged, i.e. the gradient
    # is output / input instead of the activation's slope.
    inputs = args[0]
    ratio = torch.where(inputs != 0, output / inputs.where(inputs != 0, 1), 0).detach()
    return output.detach() + (inputs - inputs.detach()) * ratio


def _layer_norm_rule(module: nn.LayerNorm, args: tuple, output: torch.Tensor) -> torch.Tensor:
    # AttnLRP's rule for normalisation: the division by the standard deviation is held constant (identity rule on
    # the non-linear part), the centring and the affine map keep their gradient.
    inputs = args[0]
    deviation = (inputs.var(dim=-1, unbiased=False, keepdim=True) + module.eps).sqrt().detach()
    linear = (inputs - inputs.mean(dim=-1, keepdim=True)) / deviation
    if module.weight is not None:
        linear = linear * module.weight
    if module.bias is not None:
        linear = linear + module.bias
    return output.detach() + (linear - linear.detach())


@contextlib.contextmanager
def _lrp_rules(model: nn.Module) -> Iterator[None]:
    """
    AttnLRP's rules as forward hooks, which keep every value and change only the gradients (Achtibat et al. 2024
    give the rules; gradient times input then equals their relevance). The hooks find the modules by the names of
    vit_ft's model file, which peft's LoRA keeps (it wraps a module in place). Softmax and linear layers keep their
    plain gradients: AttnLRP's softmax rule and LRP's epsilon rule (without epsilon) are gradient times input.
    """
    hooks = {"q_proj": [], "k_proj": [], "o_proj": [], "activation_fn": [], "LayerNorm": []}
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            hooks["LayerNorm"].append(module.register_forward_hook(_layer_norm_rule))
        elif name.endswith(("attention.q_proj", "attention.k_proj")):
            hooks[name.rsplit(".", 1)[1]].append(module.register_forward_hook(_uniform_rule))
        elif name.endswith("attention.o_proj"):
            hooks["o_proj"].append(module.register_forward_pre_hook(_uniform_rule_on_input))
        elif name.endswith("mlp.activation_fn"):
            hooks["activation_fn"].append(module.register_forward_hook(_identity_rule))
    try:
        missing = [name for name, found in hooks.items() if len(found) < model.config.num_hidden_layers]
        if missing:
            raise ValueError(
                f"{type(model).__name__} has fewer modules named {', '.join(missing)} than its "
                f"{model.config.num_hidden_layers} layers: the relevance methods need the modules of "
                "vit_ft's model file (layers.N.attention.q_proj, k_proj, o_proj, mlp.activation_fn and "
                "the LayerNorms). Use rollout or gradient_rollout on other models."
            )
        yield
    finally:
        for handle in (handle for found in hooks.values() for handle in found):
            handle.remove()


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


def _classifier_rows(relevance: torch.Tensor, config) -> torch.Tensor:
    """The mean of the rows of `relevance` `(batch, tokens, tokens)` that the classifier reads: `(batch, tokens)`."""
    prefix = config.num_prefix_tokens  # class, distillation, registers, in that order, before the patches
    if config.pooling == "mean":
        rows = relevance[:, prefix:]  # every image token: the pooled feature is their mean
    elif config.use_distillation_token and config.distillation_head:
        rows = relevance[:, :2]  # class and distillation tokens: the logits average their heads
    else:
        rows = relevance[:, :1]  # the class token
    return rows.mean(dim=1)


def _image_positions(relevance: torch.Tensor, config, grid: tuple[int, int]) -> torch.Tensor:
    """
    The image positions of a relevance per token `(batch, tokens)` as `(batch, grid_h, grid_w)` maps, negative
    values at 0 and each map scaled to a maximum of 1.
    """
    prefix = config.num_prefix_tokens
    if relevance.shape[-1] != prefix + grid[0] * grid[1]:
        raise ValueError(
            f"The attention covers {relevance.shape[-1]} tokens, not the {prefix} prefix tokens and "
            f"{grid[0]}x{grid[1]} patches of these images: check the config's patch_size."
        )
    maps = relevance[:, prefix:].float().clamp(min=0).reshape(-1, *grid)  # (batch, grid_h, grid_w)
    peak = maps.flatten(1).amax(dim=1).clamp(min=torch.finfo(maps.dtype).tiny)
    return maps / peak[:, None, None]


def _upsample(patches: torch.Tensor, size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """`(batch, grid_h, grid_w)` maps bilinearly to the pixels the patches cover, zero beyond them, `(batch, H, W)`."""
    covered = (patches.shape[1] * patch_size, patches.shape[2] * patch_size)
    pixels = nn.functional.interpolate(patches[:, None], size=covered, mode="bilinear", align_corners=False)[:, 0]
    return nn.functional.pad(pixels, (0, size[1] - covered[1], 0, size[0] - covered[0]))
