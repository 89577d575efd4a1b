"""The vit_ft model: configuration and modeling. This package ships as remote code next to every saved model, so it
imports nothing from the rest of vit_ft (tests/test_architecture.py checks)."""

from .configuration_vit_ft import PRESETS, ViTConfig
from .modeling_vit_ft import ViTForImageClassification, ViTModel, ViTPreTrainedModel

__all__ = ["PRESETS", "ViTConfig", "ViTForImageClassification", "ViTModel", "ViTPreTrainedModel"]
