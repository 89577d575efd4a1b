"""Building the model and image processor a run starts from: a checkpoint (vit_ft, transformers, timm-converted)
or a preset trained from scratch, with the dataset's labels."""

import logging
import tempfile

import torch
from peft import PeftModel
from transformers import AutoImageProcessor, ViTImageProcessor
from transformers.image_utils import PILImageResampling

from ..model.configuration_vit_ft import ViTConfig
from ..model.modeling_vit_ft import ViTForImageClassification
from ..output_dir import ADAPTER_WEIGHTS, MODEL_CONFIG, PROCESSOR_CONFIG
from .adapters import check_base_model, is_adapter, read_adapter
from .arguments import ModelArguments, check_model_source
from .pretrained import MASKED_AUTOENCODER, load_checkpoint
from .reading import naming_damaged_weights, read_json
from .remote_code import check_remote_code

logger = logging.getLogger(__name__)


def default_processor(image_size: int) -> ViTImageProcessor:
    """transformers' ViT preprocessing (mean = std = 0.5) at the model's size, for models trained from scratch."""
    return ViTImageProcessor(size={"height": image_size, "width": image_size}, resample=PILImageResampling.BICUBIC)


def build_model(
    source: ModelArguments, label_names: list[str], for_lora: bool = False
) -> tuple[ViTForImageClassification, object]:
    """
    Returns the model `source` names, labelled with `label_names`, and its image processor. A checkpoint whose
    labels differ from the dataset's, or that has none, gets new classifier heads, with a warning that says so. A LoRA
    adapter directory is merged into its base first, unless the model is `for_lora`, which an adapter cannot be.
    """
    id2label = dict(enumerate(label_names))
    overrides = source.model_overrides
    if not source.model_name_or_path:
        if not source.preset:
            raise ValueError("Set model_name_or_path (a checkpoint) or preset (an architecture to train from scratch)")
        config = ViTConfig.from_preset(source.preset, **_label_maps(id2label), **overrides)
        return ViTForImageClassification(config), default_processor(config.image_size)

    hub_kwargs = source.hub_options
    with tempfile.TemporaryDirectory() as merged:
        path = source.model_name_or_path
        if is_adapter(path, hub_kwargs):
            if for_lora:
                raise ValueError(
                    f"{path} is a LoRA adapter: merge it first (vit-ft merge-lora --adapter {path} "
                    "--output DIR) and train the new adapter on the merged model."
                )
            merge_adapter(path, merged, source.base_model, hub_kwargs, source.trust_remote_code)
            path, hub_kwargs = merged, {}
        model = checkpoint_model(
            path, id2label, overrides, hub_kwargs, source.model_name_or_path, source.trust_remote_code
        )
    processor_source = source.image_processor_name or source.model_name_or_path
    return model, load_processor(model, processor_source, source.hub_options, source.trust_remote_code)


def _label_maps(id2label: dict[int, str]) -> dict:
    return {"id2label": id2label, "label2id": {name: i for i, name in id2label.items()}}


def checkpoint_model(
    path_or_id: str,
    id2label: dict[int, str] | None,
    overrides: dict,
    hub_kwargs: dict,
    shown_name: str | None = None,
    trust_remote_code: bool = False,
) -> ViTForImageClassification:
    """
    Loads the checkpoint `path_or_id` (vit_ft, transformers ViT/DeiT, timm-converted) with config fields
    `overrides`, labelled `id2label` (None keeps its own). Heads of other labels are re-initialised, and a checkpoint
    without a head (an in21k backbone, a pretraining output) gets a new one, with a warning that says which and calls
    the checkpoint `shown_name` (no warning when None: an adapter's heads replace them).
    """
    source = read_json(path_or_id, MODEL_CONFIG, hub_kwargs) or {}
    old_labels = {int(k): v for k, v in (source.get("id2label") or {}).items()}
    relabel = id2label is not None and old_labels != id2label
    labels = _label_maps(id2label) if id2label is not None else {}
    model = load_checkpoint(
        path_or_id,
        ViTForImageClassification,
        **labels,
        **overrides,
        ignore_mismatched_sizes=relabel,
        trust_remote_code=trust_remote_code,
        **hub_kwargs,
    )
    if relabel and shown_name is not None:
        if _has_classifier(source):
            logger.warning(
                f"The labels of {shown_name} ({len(old_labels)}: {_preview(old_labels)}) differ from the "
                f"dataset's ({len(id2label)}: {_preview(id2label)}): the classifier head(s) are re-initialised."
            )
        else:
            logger.warning(
                f"{shown_name} has no classifier head: a new one is created for the dataset's {len(id2label)} "
                f"labels ({_preview(id2label)})."
            )
        # A pretraining output's head is new already: loading initialised it by the model's own rule.
        if MASKED_AUTOENCODER not in (source.get("architectures") or []):
            for head in (model.classifier, model.distillation_classifier):
                if head is not None:
                    # torch's init, not model._init_weights: transformers' initialisers skip weights it has loaded.
                    torch.nn.init.trunc_normal_(head.weight, std=model.config.initializer_range)
                    torch.nn.init.zeros_(head.bias)
    return model


def load_model(
    path_or_id: str,
    base_model: str | None = None,
    merge: bool = False,
    hub_kwargs: dict | None = None,
    trust_remote_code: bool = False,
) -> ViTForImageClassification | PeftModel:
    """
    Loads a vit_ft model directory or Hub id, or a LoRA adapter (base plus adapter, as a `PeftModel`, or merged into
    a plain model with `merge=True`). `base_model` replaces the base an adapter's adapter_config.json names. A folder
    whose config asks for code other than vit_ft's is refused unless `trust_remote_code`.

    ```python
    from vit_ft import load_model
    model = load_model("outputs/digits_lora")  # a model or an adapter directory, or a Hub id
    ```
    """
    hub_kwargs = hub_kwargs or {}
    check_model_source(path_or_id, "model")
    if base_model:
        check_model_source(base_model, "base_model")
    if not is_adapter(path_or_id, hub_kwargs):
        return load_checkpoint(
            path_or_id, ViTForImageClassification, trust_remote_code=trust_remote_code, **hub_kwargs
        )
    base, id2label, overrides = read_adapter(path_or_id, hub_kwargs)
    base = base_model or base
    base_kwargs = {key: value for key, value in hub_kwargs.items() if key != "revision"}  # the adapter's revision
    check_base_model(base, path_or_id, base_kwargs)
    # The head's labels are the adapter's; the base's own head, if of another size, is replaced by the adapter's.
    model = checkpoint_model(base, id2label, overrides, base_kwargs, trust_remote_code=trust_remote_code)
    check_remote_code(path_or_id, trust_remote_code, hub_kwargs)  # peft runs no folder's code; its config might ask
    with naming_damaged_weights(path_or_id, (ADAPTER_WEIGHTS,), hub_kwargs):
        model = PeftModel.from_pretrained(model, path_or_id, **hub_kwargs)
    return model.merge_and_unload() if merge else model


def merge_adapter(
    adapter: str,
    output_dir: str,
    base_model: str | None = None,
    hub_kwargs: dict | None = None,
    trust_remote_code: bool = False,
) -> ViTForImageClassification:
    """
    Writes base plus the LoRA adapter `adapter` as one plain vit_ft model (weights, config, remote code, image
    processor) to `output_dir`; it loads with AutoModelForImageClassification and pipeline. Returns the model.
    """
    merged = load_model(adapter, base_model, merge=True, hub_kwargs=hub_kwargs, trust_remote_code=trust_remote_code)
    merged.save_pretrained(output_dir)
    load_processor(merged, adapter, hub_kwargs, trust_remote_code).save_pretrained(output_dir)
    return merged


def _has_classifier(config: dict) -> bool:
    """
    Whether the checkpoint whose config.json is `config` holds a classifier with labels of its own: it was saved by a
    class with a classification head (transformers' ViTModel of an in21k checkpoint, a pretraining output were not),
    and at least one of its label names is not empty.
    """
    saved_by = config.get("architectures") or ["ForImageClassification"]  # an unnamed class: judged by its labels
    names = (config.get("id2label") or {}).values()
    return any("ForImageClassification" in name for name in saved_by) and any(str(name).strip() for name in names)


def _preview(id2label: dict) -> str:
    names = [id2label[i] for i in sorted(id2label)]
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def load_processor(
    model: ViTForImageClassification, source: str, hub_kwargs: dict | None = None, trust_remote_code: bool = False
):
    """
    The image processor of `source` (a model or adapter directory or Hub id), producing the model's image size. A
    processor or config that asks for code other than vit_ft's is refused unless `trust_remote_code`.
    """
    hub_kwargs = hub_kwargs or {}
    if read_json(source, PROCESSOR_CONFIG, hub_kwargs) is None:
        logger.warning(f"{source} has no {PROCESSOR_CONFIG}: using ViT's normalisation (mean = std = 0.5).")
        return default_processor(model.config.image_size)
    check_remote_code(source, trust_remote_code, hub_kwargs)
    # Explicit, never None: transformers would then ask on stdin whether to run the folder's code.
    processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code, **hub_kwargs)
    size = model.config.image_size
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    final = (crop or processor.size).get("height")
    if final != size:
        # Fine-tuning at another resolution than the checkpoint's: the processor must produce the model's size.
        logger.warning(f"Resizing the image processor's output from {final} to the model's image_size {size}.")
        processor.size = {"height": size, "width": size}
        processor.do_center_crop = False
    return processor


def parameter_counts(model) -> tuple[int, int]:
    """(all, trainable) parameters of `model`: with LoRA, the adapters' own count in both."""
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters), sum(p.numel() for p in parameters if p.requires_grad)


def freeze_backbone(model: ViTForImageClassification) -> int:
    """Freezes everything but the classifier head(s), for a linear probe. Returns the trainable parameter count."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(("classifier.", "distillation_classifier."))
    return parameter_counts(model)[1]
