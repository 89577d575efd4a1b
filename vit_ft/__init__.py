"""vit-ft: fine-tune Vision Transformers with the Hugging Face stack.

Importing the package registers vit_ft's config and models with transformers' Auto classes.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    ViTImageProcessor,
)

from .model import PRESETS, ViTConfig, ViTForImageClassification, ViTModel, ViTPreTrainedModel

__version__ = "0.1.0"

AutoConfig.register(ViTConfig.model_type, ViTConfig, exist_ok=True)
AutoModel.register(ViTConfig, ViTModel, exist_ok=True)
AutoModelForImageClassification.register(ViTConfig, ViTForImageClassification, exist_ok=True)
AutoImageProcessor.register(ViTConfig, image_processor_classes={"torchvision": ViTImageProcessor}, exist_ok=True)
# `save_pretrained` then writes `auto_map` and copies the modeling files, so saved models load with
# `trust_remote_code=True` where vit_ft is not installed.
ViTConfig.register_for_auto_class()
ViTModel.register_for_auto_class("AutoModel")
ViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")


# Imported on first use, so `import vit_ft` stays light: these bring in peft, the training stack and the Hub client.
_LAZY = {"load_model": "checkpoints.loading", "push_model": "hub.push", "build_model_card": "hub.card",
         "attention_maps": "evaluation.attention_maps"}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vit_ft' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "ViTConfig",
    "ViTForImageClassification",
    "ViTModel",
    "ViTPreTrainedModel",
    "__version__",
    "attention_maps",
    "build_model_card",
    "load_model",
    "push_model",
]
