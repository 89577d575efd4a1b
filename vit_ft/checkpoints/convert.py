"""`vit-ft convert`: turn transformers ViT/DeiT checkpoints and timm ViT weights into vit_ft model directories."""

from pathlib import Path

import torch
from transformers import AutoImageProcessor, ViTImageProcessor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling

from ..model.configuration_vit_ft import ViTConfig
from ..model.modeling_vit_ft import ViTForImageClassification, ViTModel
from ..output_dir import MODEL_CONFIG, PROCESSOR_CONFIG
from .arguments import check_model_source
from .key_conversion import convert_timm_state_dict
from .pretrained import load_checkpoint
from .reading import read_json, read_timm_weights

# timm's own normalisation: Google's ViT weights (augreg, in21k) expect inputs in [-1, 1], DeiT's ImageNet statistics.
_TIMM_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def convert_transformers(
    source: str, output: str | Path, trust_remote_code: bool = False
) -> ViTModel | ViTForImageClassification:
    """
    Converts a transformers ViT/DeiT checkpoint (directory or Hub id) into a vit_ft directory with the source's own
    image processor. Base models (no classifier in the checkpoint) become a vit_ft `ViTModel`. A checkpoint whose
    config or processor asks for code other than vit_ft's is refused unless `trust_remote_code`.
    """
    check_model_source(source, "input")
    config = read_json(source, MODEL_CONFIG, {})
    if config is None:
        raise OSError(f"{source} has no {MODEL_CONFIG}: pass a transformers ViT/DeiT directory or Hub id.")
    has_head = any("ForImageClassification" in name for name in config.get("architectures") or [])
    model = load_checkpoint(
        source, ViTForImageClassification if has_head else ViTModel, trust_remote_code=trust_remote_code
    )
    if read_json(source, PROCESSOR_CONFIG, {}) is not None:
        # Explicit, never None: transformers would then ask on stdin whether to run the folder's code.
        processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    else:
        processor = _processor(model.config.image_size, _TIMM_HALF)  # transformers' ViT default normalisation
    _save(model, processor, output)
    return model


def convert_timm(
    timm_model: str,
    weights: str | Path,
    output: str | Path,
    image_mean: tuple[float, ...] | None = None,
    image_std: tuple[float, ...] | None = None,
) -> ViTModel | ViTForImageClassification:
    """
    Converts the weights of the timm model named `timm_model` (e.g. `vit_base_patch16_224.augreg_in21k`) into a vit_ft
    directory. The number of classes comes from the weights' head; weights without a head become a `ViTModel`.
    """
    state_dict = convert_timm_state_dict(read_timm_weights(weights))
    head = state_dict.get("classifier.weight")
    config = ViTConfig.from_preset(timm_model)
    model_class = ViTModel
    if head is not None:
        config.num_labels = head.shape[0]
        model_class = ViTForImageClassification
    else:
        state_dict = {key.removeprefix("vit."): value for key, value in state_dict.items()}
    with torch.device("meta"):
        expected = model_class(config).state_dict()
    _check_weights_match(expected, state_dict, timm_model, weights)
    model = model_class(config)
    model.load_state_dict(state_dict, strict=True)
    default = (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD) if timm_model.startswith("deit") else _TIMM_HALF
    _save(model, _processor(config.image_size, (image_mean or default[0], image_std or default[1])), output)
    return model


def _check_weights_match(expected: dict, found: dict, timm_model: str, weights) -> None:
    """Names the first key whose presence or shape differs between the named architecture and the weights file."""
    for key in expected:
        if key not in found:
            raise ValueError(
                f"{weights} does not match timm model {timm_model!r}: it lacks {key!r} "
                f"(shape {tuple(expected[key].shape)})."
            )
        if tuple(found[key].shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{weights} does not match timm model {timm_model!r}: {key!r} has shape {tuple(found[key].shape)} "
                f"in the file, {tuple(expected[key].shape)} in {timm_model}. Check the model name (patch size, "
                "width, image size) against the weights."
            )
    extra = [key for key in found if key not in expected]
    if extra:
        raise ValueError(
            f"{weights} does not match timm model {timm_model!r}: it has {extra[0]!r} "
            f"(shape {tuple(found[extra[0]].shape)}), which {timm_model} lacks."
        )


def _processor(image_size: int, mean_std: tuple) -> ViTImageProcessor:
    mean, std = mean_std
    return ViTImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=list(mean),
        image_std=list(std),
        resample=PILImageResampling.BICUBIC,
    )


def _save(model, processor, output: str | Path) -> None:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
