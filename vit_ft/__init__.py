"""vit-ft: fine-tune Vision Transformers with the Hugging Face stack.

`import vit_ft` registers model type `vit_ft` with transformers' `AutoConfig`, and loads the model package (and with
it transformers' modeling code) only on first use: of a model class, of anything that builds a model, or of an Auto
class on a vit_ft checkpoint. Loading it registers vit_ft's config, models and image processor with every Auto class.
Serving an exported ONNX model (`load_predictor`) never loads it.
"""

import importlib

from transformers import AutoConfig

__version__ = "0.1.0"

# Imported on first use, so `import vit_ft` stays light: the model classes bring in transformers' modeling code,
# the rest peft, the training stack and the Hub client.
_LAZY = {
    "PRESETS": "model",
    "ViTConfig": "model",
    "ViTForImageClassification": "model",
    "ViTForMaskedAutoencoding": "model",
    "ViTModel": "model",
    "ViTPreTrainedModel": "model",
    "load_model": "checkpoints.loading",
    "load_predictor": "evaluation.predictor",
    "export_onnx": "export.onnx_export",
    "push_model": "hub.push",
    "build_model_card": "hub.card",
    "attention_maps": "evaluation.attention_maps",
}


def _real_config_class() -> type:
    return importlib.import_module(".model", __name__).ViTConfig


class _LoadsTheModelPackage(type):
    """Stands for vit_ft's config class until transformers first uses it: then it imports the model package, whose
    registration puts the real classes in the Auto classes (so every Auto model lookup, which starts from a config
    instance, finds the real models)."""

    def __getattr__(cls, name: str):
        return getattr(_real_config_class(), name)

    def __call__(cls, *args, **kwargs):
        return _real_config_class()(*args, **kwargs)


class _DeferredViTConfig(metaclass=_LoadsTheModelPackage):
    model_type = "vit_ft"


AutoConfig.register(_DeferredViTConfig.model_type, _DeferredViTConfig, exist_ok=True)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vit_ft' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "ViTConfig",
    "ViTForImageClassification",
    "ViTForMaskedAutoencoding",
    "ViTModel",
    "ViTPreTrainedModel",
    "__version__",
    "attention_maps",
    "build_model_card",
    "export_onnx",
    "load_model",
    "load_predictor",
    "push_model",
]
