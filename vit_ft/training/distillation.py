"""
Knowledge distillation from a larger teacher: the loss functions, the teacher that runs beside the student, and
students cut from the teacher by depth.

Soft distillation follows Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network"); hard-label and
distillation-token training follow DeiT (Touvron et al. 2021, "Training data-efficient image transformers &
distillation through attention").
"""

import logging
import re

import torch
from torch import nn
from torch.nn import functional

from ..checkpoints.labels import match_labels
from ..checkpoints.loading import load_model, load_processor
from ..model.configuration_vit_ft import ViTConfig
from ..model.modeling_vit_ft import ViTForImageClassification, classification_loss
from .arguments import parse_layer_indices

logger = logging.getLogger(__name__)

TEACHER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def soft_distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """
    KL(teacher || student) of the two `(batch, num_labels)` logits softened at `temperature`, times temperature^2 so
    its gradients keep their scale as the temperature changes (Hinton et al. 2015); averaged over the batch.
    """
    student = functional.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = functional.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return functional.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


def hard_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student against the teacher's top class (DeiT's hard distillation)."""
    return functional.cross_entropy(student_logits.float(), teacher_logits.argmax(dim=-1))


def distillation_loss(
    outputs,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    distillation_type: str,
    alpha: float,
    temperature: float,
    problem_type: str | None = None,
) -> dict[str, torch.Tensor]:
    """
    `{"loss", "label_loss", "distillation_loss"}` for the student's `outputs`: (1 - alpha) * loss against `labels`
    (class ids or soft targets) + alpha * loss against the teacher. A student with a distillation token learns the
    labels with its class head and the teacher with its distillation head (DeiT); one without, both with its logits.
    """
    if outputs.distillation_logits is not None:
        label_logits, student_logits = outputs.cls_logits, outputs.distillation_logits
    else:
        label_logits = student_logits = outputs.logits
    label_loss = classification_loss(label_logits, labels, problem_type)
    if distillation_type == "soft":
        teacher_loss = soft_distillation_loss(student_logits, teacher_logits, temperature)
    else:
        teacher_loss = hard_distillation_loss(student_logits, teacher_logits)
    loss = (1 - alpha) * label_loss + alpha * teacher_loss
    return {"loss": loss, "label_loss": label_loss.detach(), "distillation_loss": teacher_loss.detach()}


class Teacher(nn.Module):
    """
    The teacher: frozen, in eval mode, run under no_grad in `dtype`. It takes the student's normalised
    `pixel_values` and gives logits on its own terms: images brought back to pixels, resized to its own image size
    (it may see 384 where the student sees 224) and normalised with its own mean and std.

    Not a submodule of the student, so the Trainer never wraps it in DDP/FSDP nor hands it to the optimizer.
    """

    def __init__(self, model: ViTForImageClassification, processor, student_processor, dtype: str = "float32"):
        super().__init__()
        if dtype not in TEACHER_DTYPES:
            raise ValueError(f"teacher_dtype={dtype!r}: choose one of {', '.join(TEACHER_DTYPES)}.")
        self.dtype = TEACHER_DTYPES[dtype]
        self.model = model.eval().requires_grad_(False).to(self.dtype)
        self.image_size = model.config.image_size
        for name, source in (("student", student_processor), ("teacher", processor)):
            # (1, 3, 1, 1) to broadcast over (batch, channels, height, width)
            self.register_buffer(f"{name}_mean", torch.tensor(source.image_mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer(f"{name}_std", torch.tensor(source.image_std).view(1, -1, 1, 1), persistent=False)
        statistics = [[*source.image_mean, *source.image_std] for source in (student_processor, processor)]
        self.renormalise = statistics[0] != statistics[1]
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # dropout and drop-path stay off, whatever the caller asks

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        resize = pixel_values.shape[-2:] != (self.image_size, self.image_size)
        if not (resize or self.renormalise):  # the student's inputs are the teacher's: no work, no rounding
            return self.model(pixel_values=pixel_values.to(self.dtype)).logits.float()
        pixels = pixel_values.float() * self.student_std + self.student_mean
        if resize:
            size = (self.image_size, self.image_size)
            pixels = functional.interpolate(pixels, size=size, mode="bicubic", align_corners=False, antialias=True)
        pixels = (pixels - self.teacher_mean) / self.teacher_std
        return self.model(pixel_values=pixels.to(self.dtype)).logits.float()


def load_teacher_model(
    path_or_id: str,
    label_names: list[str],
    hub_kwargs: dict | None = None,
    trust_remote_code: bool = False,
    label_matching: str = "auto",
) -> tuple[ViTForImageClassification, object]:
    """
    The teacher model in `path_or_id` (a vit_ft, transformers ViT/DeiT or timm-converted model, or a LoRA adapter,
    merged) and its image processor, after checking that its labels are the data's `label_names` by the rule
    `label_matching` (see `vit_ft.checkpoints.labels`). A teacher that asks for code other than vit_ft's is refused
    unless `trust_remote_code` (the recipe's field).
    """
    model = load_model(path_or_id, merge=True, hub_kwargs=hub_kwargs, trust_remote_code=trust_remote_code)
    advice = "Distil on data with the teacher's classes in the same order, or fine-tune the teacher on it first."
    match_labels(
        model.config.id2label, label_names, "teacher", path_or_id, advice, label_matching, "teacher_label_matching"
    )
    return model, load_processor(model, path_or_id, hub_kwargs, trust_remote_code)


def depth_pruned_student(
    teacher: ViTForImageClassification, student_layers: str, overrides: dict | None = None
) -> ViTForImageClassification:
    """
    A student of the teacher's width made of its layers `student_layers`: embeddings, the chosen layers, the final
    norm and the head(s) start as copies of the teacher's. `overrides` may set regularisation (drop_path_rate,
    dropout rates) but not the architecture.
    """
    layers = parse_layer_indices(student_layers, teacher.config.num_hidden_layers)
    config_dict = {**teacher.config.to_dict(), **(overrides or {}), "num_hidden_layers": len(layers)}
    config = ViTConfig(**{key: value for key, value in config_dict.items() if key not in ("model_type", "auto_map")})
    student = ViTForImageClassification(config)
    renumber = {f"vit.layers.{source}.": f"vit.layers.{target}." for target, source in enumerate(layers)}
    weights = {}
    for name, tensor in teacher.state_dict().items():
        match = re.match(r"vit\.layers\.\d+\.", name)
        if match is None:
            weights[name] = tensor
        elif match.group(0) in renumber:
            weights[renumber[match.group(0)] + name[match.end() :]] = tensor
    try:
        student.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"model_overrides {overrides} change the architecture, which a depth-pruned student copies from the "
            f"teacher: keep only regularisation fields there (drop_path_rate, dropout rates). ({error})"
        ) from error
    logger.warning(f"Student: teacher layers {layers} of {teacher.config.num_hidden_layers}, copied.")
    return student
