"""Building the model and image processor a run starts from: a checkpoint (vit_ft, transformers, timm-converted)
or a preset trained from scratch, with the dataset's labels."""

import json
import logging

import torch
from transformers import AutoImageProcessor, ViTImageProcessor
from transformers.image_utils import PILImageResampling

from .arguments import ModelArguments
from .configuration_vit_ft import ViTConfig
from .modeling_vit_ft import ViTForImageClassification, _read_json

logger = logging.getLogger(__name__)


def _hub_kwargs(args: ModelArguments) -> dict:
    return {"cache_dir": args.cache_dir, "revision": args.model_revision, "token": args.token}


def default_processor(image_size: int) -> ViTImageProcessor:
    """transformers' ViT preprocessing (mean = std = 0.5) at the model's size, for models trained from scratch."""
    return ViTImageProcessor(size={"height": image_size, "width": image_size}, resample=PILImageResampling.BICUBIC)


def build_model(args: ModelArguments, label_names: list[str]) -> tuple[ViTForImageClassification, object]:
    """
    Returns the model, labelled with `label_names`, and its image processor. A checkpoint whose labels differ from
    the dataset's gets new classifier heads, with a warning that says so.
    """
    id2label = dict(enumerate(label_names))
    labels = {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}
    overrides = json.loads(args.model_overrides) if args.model_overrides else {}
    if not args.model_name_or_path:
        if not args.preset:
            raise ValueError("Set model_name_or_path (a checkpoint) or preset (an architecture to train from scratch)")
        config = ViTConfig.from_preset(args.preset, **labels, **overrides)
        return ViTForImageClassification(config), default_processor(config.image_size)

    source = _read_json(args.model_name_or_path, "config.json", _hub_kwargs(args)) or {}
    old_labels = {int(k): v for k, v in (source.get("id2label") or {}).items()}
    relabel = old_labels != id2label
    model = ViTForImageClassification.from_pretrained(
        args.model_name_or_path, **labels, **overrides, ignore_mismatched_sizes=relabel, **_hub_kwargs(args)
    )
    if relabel:
        logger.warning(
            f"The labels of {args.model_name_or_path} ({len(old_labels)}: {_preview(old_labels)}) differ from the "
            f"dataset's ({len(id2label)}: {_preview(id2label)}): the classifier head(s) are re-initialised."
        )
        for head in (model.classifier, model.distillation_classifier):
            if head is not None:
                # torch's init, not model._init_weights: transformers' initialisers skip weights it has loaded.
                torch.nn.init.trunc_normal_(head.weight, std=model.config.initializer_range)
                torch.nn.init.zeros_(head.bias)
    return model, load_processor(model, args)


def _preview(id2label: dict) -> str:
    names = [id2label[i] for i in sorted(id2label)]
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def load_processor(model: ViTForImageClassification, args: ModelArguments):
    """The image processor of `args` (its own, or the checkpoint's), producing the model's image size."""
    source = args.image_processor_name or args.model_name_or_path
    if _read_json(source, "preprocessor_config.json", _hub_kwargs(args)) is None:
        logger.warning(f"{source} has no preprocessor_config.json: using ViT's normalisation (mean = std = 0.5).")
        return default_processor(model.config.image_size)
    processor = AutoImageProcessor.from_pretrained(source, **_hub_kwargs(args))
    size = model.config.image_size
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    final = (crop or processor.size).get("height")
    if final != size:
        # Fine-tuning at another resolution than the checkpoint's: the processor must produce the model's size.
        logger.warning(f"Resizing the image processor's output from {final} to the model's image_size {size}.")
        processor.size = {"height": size, "width": size}
        processor.do_center_crop = False
    return processor


def freeze_backbone(model: ViTForImageClassification) -> int:
    """Freezes everything but the classifier head(s), for a linear probe. Returns the trainable parameter count."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(("classifier.", "distillation_classifier."))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
