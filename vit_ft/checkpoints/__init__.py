"""Reading every checkpoint source (vit_ft, transformers ViT/DeiT, timm, LoRA adapters, image processors) into
vit_ft models."""

from .pretrained import load_checkpoint

__all__ = ["load_checkpoint"]
