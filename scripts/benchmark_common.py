"""What the benchmark scripts share: vit_ft's model of a preset (built by the library), the presets transformers can
build too, the seeding, optimizer, autocast and training steps they time, the interleaved rounds they time them in,
the clock's CUDA synchronisation and the description of the machine."""

import argparse
import contextlib
import os
import platform
import random
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig, ViTImageProcessor

from vit_ft import PRESETS, ViTForImageClassification
from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.checkpoints.loading import build_model
from vit_ft.transformers_internals import attention_implementation

SEED = 0
# The attention kernel every model is timed with: timm calls F.scaled_dot_product_attention by default, so the Hugging
# Face models are pinned to "sdpa" too rather than left to whatever default the installed transformers picks.
ATTN_IMPLEMENTATION = "sdpa"
# Preset fields transformers' ViTConfig and ViTMAEConfig can express; other presets (registers, distillation token,
# mean pooling) have no transformers equivalent of identical architecture.
_PLAIN_VIT_FIELDS = {
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "patch_size",
    "image_size",
}

Step = Callable[[], None]


def synchronize(device: torch.device) -> None:
    # CUDA kernels run asynchronously: without this the clock would stop before the work is done.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device, **versions: str) -> dict:
    """The machine, the device and the given library versions, as recorded next to every result."""
    info = {
        "torch": torch.__version__,
        **versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "device_name": cpu_name(),
        # Other processes share the CPUs; a high load average before or after the run flags a noisy measurement.
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info.update(
            device_name=torch.cuda.get_device_name(device),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    return info


def preset_model(preset: str, num_labels: int) -> tuple[ViTForImageClassification, ViTImageProcessor]:
    """
    vit_ft's model of `preset` with `num_labels` classes, and its image processor: `vit_ft.checkpoints.loading.
    build_model`, as `vit-ft train` builds a model trained from scratch.
    """
    return build_model(ModelArguments(preset=preset), [f"class_{index}" for index in range(num_labels)])


def check_preset(name: str, parser: argparse.ArgumentParser) -> None:
    """Stops `parser` unless `name` is a preset that transformers' ViT builds identically."""
    if name not in PRESETS:
        parser.error(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    extra = set(PRESETS[name]) - _PLAIN_VIT_FIELDS
    if extra:
        parser.error(f"{name} uses {sorted(extra)}, which transformers' ViT cannot build identically.")


def seed_everything(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def check_attention(model: nn.Module, name: str) -> None:
    """
    Guards against a transformers version silently falling back to another attention kernel, in every config the
    model's modules hold: the masked-autoencoding decoders (vit_ft's and transformers') keep a copy of their own,
    which `set_attn_implementation` does not reach.
    """
    configs = [getattr(module, "config", None) for module in model.modules()]
    actual = {attention_implementation(config) for config in configs if isinstance(config, PretrainedConfig)}
    assert actual == {ATTN_IMPLEMENTATION}, f"{name} uses attention {actual}, not {ATTN_IMPLEMENTATION!r}"


def blocks_macs(tokens: int, width: int, depth: int, mlp: int) -> int:
    """
    Multiply-adds of `depth` Transformer blocks on one image's `tokens` tokens: the q/k/v/output projections, the
    attention scores and weighted sum, the MLP. Norms, softmax and activations are left out, as MFU usually does.
    """
    return depth * (tokens * (4 * width * width + 2 * width * mlp) + 2 * tokens * tokens * width)


def make_optimizer(model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
    # The learning rate does not change the cost of a step; a small one keeps the weights from blowing up to
    # inf/NaN over the run, which could change the speed of the arithmetic. `fused`: one kernel for the whole update
    # (the Trainer's `optim: adamw_torch_fused`), rather than torch's default multi-tensor loop.
    return torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused or None)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """What the Trainer (through accelerate) puts around the forward and loss with `bf16=True`; nothing without."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def training_step(trainer, inputs: dict, bf16: bool, max_grad_norm: float | None = None) -> None:
    """
    One optimizer step of `trainer`'s model through its `compute_loss`, as the Trainer takes it (no scaler): forward
    and loss under `autocast`, backward, gradients clipped to `max_grad_norm` when it is given and positive, step.
    """
    model = trainer.model
    with autocast(next(model.parameters()).device, bf16):
        loss = trainer.compute_loss(model, inputs)
    loss.backward()
    if max_grad_norm:  # the Trainer clips every step (max_grad_norm defaults to 1.0)
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)


def make_training_step(
    optimizer: torch.optim.Optimizer, loss: Callable[[], torch.Tensor], device: torch.device, bf16: bool
) -> Step:
    """A training step: `loss()` (forward and loss) under `autocast`, backward, `optimizer.step()`, zero_grad."""

    def step() -> None:
        with autocast(device, bf16):
            value = loss()
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds `step` takes, the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def warm_up(steps: dict[str, Step], count: int, device: torch.device) -> None:
    # Untimed: first calls pay for allocator growth, kernel selection, AdamW state and, with --compile, compiling.
    for step in steps.values():
        for _ in range(count):
            step()
    synchronize(device)


def minor_page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_per_step(step: Step, count: int, device: torch.device) -> tuple[float, float]:
    """Seconds and minor page faults per step."""
    synchronize(device)
    faults = minor_page_faults()
    start = time.perf_counter()
    for _ in range(count):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / count, (minor_page_faults() - faults) / count


def measure_rounds(
    measure: Callable[[str], tuple[float, float]], order: list[str], repeats: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """
    Seconds per step of each model in each round, from `measure(impl)` (seconds and page faults per step), the
    starting model rotating from round to round; and each model's median page faults per step.
    """
    times: dict[str, list[float]] = {impl: [] for impl in order}
    faults: dict[str, list[float]] = {impl: [] for impl in order}
    for round_index in range(repeats):
        shift = round_index % len(order)
        for impl in order[shift:] + order[:shift]:
            seconds, step_faults = measure(impl)
            times[impl].append(seconds)
            faults[impl].append(step_faults)
    return times, {impl: statistics.median(values) for impl, values in faults.items()}


def measure_interleaved(
    steps: dict[str, Step], repeats: int, count: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """`count` steps of each model per round, all in this process."""
    return measure_rounds(lambda impl: time_per_step(steps[impl], count, device), list(steps), repeats)
