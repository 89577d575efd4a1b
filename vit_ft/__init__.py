"""vit-ft: fine-tune Vision Transformers with the Hugging Face stack.

`import vit_ft` is light: the model package (and with it torch's and transformers' modeling code) loads on first use
of a model class, or of anything that builds a model. Loading it registers vit_ft's config and models with
transformers' Auto classes (`import vit_ft.model` does only that). Serving an exported ONNX model
(`load_predictor`) never loads it.
"""

import importlib

__version__ = "0.1.0"

# Imported on first use, so `import vit_ft` stays light: the model classes bring in transformers' modeling code,
# the rest peft, the training stack and the Hub client.
_LAZY = {
    "PRESETS": "model",
    "ViTConfig": "model",
    "ViTForImageClassification": "model",
    "ViTModel": "model",
    "ViTPreTrainedModel": "model",
    "load_model": "checkpoints.loading",
    "load_predictor": "evaluation.predictor",
    "export_onnx": "export.onnx_export",
    "push_model": "hub.push",
    "build_model_card": "hub.card",
    "attention_maps": "evaluation.attention_maps",
}


def __getattr__(name: str):
    if name in _LAZY:
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
    "export_onnx",
    "load_model",
    "load_predictor",
    "push_model",
]
