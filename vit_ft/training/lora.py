"""LoRA through peft: the modules a target names, the adapter a run trains, and loading and merging adapters."""

import os
import re
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from ..model.modeling_vit_ft import ViTForImageClassification
from ..output_dir import ADAPTER_RECORD, write_json
from .arguments import LoraArguments

# Module names, not full paths: every block's modules of that name are targeted.
LORA_TARGETS = {
    "qv": ("q_proj", "v_proj"),  # Hu et al. 2021's choice, and peft's image-classification example
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "all-linear": ("q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"),
}
HEADS = ("classifier", "distillation_classifier")


def target_modules(model: nn.Module, target: str) -> list[str]:
    """
    The full names of the linear layers `target` selects: a preset of `LORA_TARGETS` or a comma-separated list of
    module names (`q_proj,fc1`) or paths (`vit.layers.0.mlp.fc1`). Raises a ValueError that lists the model's
    linear layers when a name matches none, or names a classifier head (heads are trained in full instead).
    """
    wanted = LORA_TARGETS.get(target) or tuple(name.strip() for name in target.split(",") if name.strip())
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    chosen = set()
    for name in wanted:
        hits = [path for path in linear if path == name or path.endswith(f".{name}")]
        if not hits:
            raise ValueError(
                f"lora_target names {name!r}, which matches no linear layer of the model. Its linear layers are: "
                f"{', '.join(_layer_patterns(linear))}. Use these names, or a preset: {', '.join(LORA_TARGETS)}."
            )
        if any(path.split(".")[-1] in HEADS for path in hits):
            raise ValueError(f"lora_target names the head {name!r}: with LoRA, heads train in full; leave it out.")
        chosen.update(hits)
    return sorted(chosen)


def _layer_patterns(names: list[str]) -> list[str]:
    """`vit.layers.0.mlp.fc1`, `vit.layers.1.mlp.fc1`, ... shown once, as `vit.layers.N.mlp.fc1`."""
    return list(dict.fromkeys(re.sub(r"\.layers\.\d+\.", ".layers.N.", name) for name in names))


def lora_config(model: ViTForImageClassification, lora: LoraArguments) -> LoraConfig:
    """The peft configuration `lora` describes, for `model`: its targets, and its classifier head(s) saved in full."""
    heads = [name for name in HEADS if getattr(model, name) is not None]
    return LoraConfig(
        r=lora.lora_r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=target_modules(model, lora.lora_target),
        use_dora=lora.use_dora,
        use_rslora=lora.use_rslora,
        bias=lora.lora_bias,
        modules_to_save=heads,
    )


def _base_reference(path_or_id: str) -> str:
    # A local base is recorded by absolute path, so the adapter loads from any working directory.
    return os.path.abspath(path_or_id) if os.path.isdir(path_or_id) else path_or_id


def add_lora(model: ViTForImageClassification, lora: LoraArguments, base_model: str) -> PeftModel:
    """
    Wraps `model`, loaded from `base_model` (a directory or Hub id), in the LoRA adapters `lora` describes; only the
    adapters and the head(s) stay trainable. The adapter records `base_model` as its base.
    """
    config = lora_config(model, lora)
    # peft records the model's name_or_path as the adapter's base: make it one that loads from any directory.
    model.name_or_path = model.config.name_or_path = _base_reference(base_model)
    return get_peft_model(model, config)


def write_adapter_record(output_dir: str, model: ViTForImageClassification, overrides: dict) -> None:
    """Writes `ADAPTER_RECORD`: the labels and config fields the base model needs for the adapter to fit."""
    record = {"id2label": model.config.id2label, "label2id": model.config.label2id, "config_overrides": overrides}
    write_json(Path(output_dir) / ADAPTER_RECORD, record)
