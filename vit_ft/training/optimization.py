"""What ViT fine-tuning needs beyond TrainingArguments: layer-wise learning-rate decay, weight-decay exclusions,
and an exponential moving average (EMA) of the weights."""

import contextlib
import re

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from transformers import TrainerCallback

from ..output_dir import EMA_WEIGHTS, checkpoint_dir

# Biases, norms, LayerScale, tokens and positions are not decayed (as timm's `no_weight_decay`). Decided by name, not
# by `ndim == 1`: FSDP1 flattens every parameter to one dimension.
_NO_DECAY = re.compile(
    r"(\.bias$|layernorm|\.lambda1$|position_embeddings|cls_token|distillation_token|register_tokens)"
)
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def layer_id(name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for block i, num_layers + 1 for the final norm and the heads."""
    if "embeddings." in name:
        return 0
    match = _LAYER.search(name)
    return int(match.group(1)) + 1 if match else num_layers + 1


def parameter_groups(
    model: nn.Module, learning_rate: float, weight_decay: float, layer_decay: float | None, num_layers: int
) -> list[dict]:
    """
    Optimizer groups: no weight decay on biases, norms, LayerScale, tokens and positions (`_NO_DECAY`); with
    `layer_decay`, block i of L learns at
    lr * layer_decay^(L + 1 - layer_id) (BEiT, Bao et al. 2022), the heads at lr.
    """
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = _NO_DECAY.search(name) is None
        depth = layer_id(name, num_layers) if layer_decay is not None else num_layers + 1
        scale = layer_decay ** (num_layers + 1 - depth) if layer_decay is not None else 1.0
        group = groups.setdefault(
            (depth, decay),
            {"params": [], "lr": learning_rate * scale, "weight_decay": weight_decay if decay else 0.0},
        )
        group["params"].append(parameter)
    return list(groups.values())


class EMACallback(TrainerCallback):
    """
    Keeps `AveragedModel` EMA weights, updated after every optimizer step and written next to each checkpoint
    (`ema.safetensors`), so a resumed run continues the same average.
    """

    file_name = EMA_WEIGHTS

    def __init__(self, decay: float):
        self.decay = decay
        self.ema: AveragedModel | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.ema is None:
            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        checkpoint = checkpoint_dir(args.output_dir, state.global_step) / self.file_name
        if state.global_step > 0 and checkpoint.is_file():
            self.ema.load_state_dict(load_file(str(checkpoint), device=str(next(model.parameters()).device)))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.ema.update_parameters(model)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = checkpoint_dir(args.output_dir, state.global_step)
            folder.mkdir(parents=True, exist_ok=True)
            tensors = {key: value.detach().contiguous().cpu() for key, value in self.ema.state_dict().items()}
            save_file(tensors, str(folder / self.file_name))

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Runs the block with the EMA weights in `model`, then puts the trained weights back."""
        if self.ema is None:
            yield
            return
        trained = {key: value.detach().clone() for key, value in model.state_dict().items()}
        self.copy_to(model)
        try:
            yield
        finally:
            model.load_state_dict(trained)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrites `model`'s weights with the EMA weights."""
        model.load_state_dict(self.ema.module.state_dict())
