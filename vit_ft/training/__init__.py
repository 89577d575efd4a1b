"""The Trainer, optimizer groups, EMA, batch mixing, distillation and LoRA."""
