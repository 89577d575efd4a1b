"""What the benchmark scripts share: vit_ft's model of a preset (built by the library), the autocast and the training
step they time, the clock's CUDA synchronisation and the description of the machine."""

import contextlib
import os
import platform
import time
from collections.abc import Callable

import torch
from torch import nn
from transformers import ViTImageProcessor

from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.checkpoints.loading import build_model


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


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds `step` takes, the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start
