"""The vit_ft model: configuration and modeling. This package ships as remote code next to every saved model, so it
imports nothing from the rest of vit_ft (tests/test_architecture.py checks).

Importing it registers vit_ft's config and models with transformers' Auto classes.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
    ViTImageProcessor,
)

from .configuration_vit_ft import PRESETS, ViTConfig
from .modeling_vit_ft import ViTForImageClassification, ViTForMaskedAutoencoding, ViTModel, ViTPreTrainedModel

AutoConfig.register(ViTConfig.model_type, ViTConfig, exist_ok=True)
AutoModel.register(ViTConfig, ViTModel, exist_ok=True)
AutoModelForImageClassification.register(ViTConfig, ViTForImageClassification, exist_ok=True)
AutoModelForPreTraining.register(ViTConfig, ViTForMaskedAutoencoding, exist_ok=True)
AutoImageProcessor.register(ViTConfig, image_processor_classes={"torchvision": ViTImageProcessor}, exist_ok=True)
# `save_pretrained` then writes `auto_map` and copies the modeling files, so saved models load with
# `trust_remote_code=True` where vit_ft is not installed.
ViTConfig.register_for_auto_class()
ViTModel.register_for_auto_class("AutoModel")
ViTForImageClassification.register_for_auto_class("AutoModelForImageClassification")
ViTForMaskedAutoencoding.register_for_auto_class("AutoModelForPreTraining")

__all__ = [
    "PRESETS",
    "ViTConfig",
    "ViTForImageClassification",
    "ViTForMaskedAutoencoding",
    "ViTModel",
    "ViTPreTrainedModel",
]
