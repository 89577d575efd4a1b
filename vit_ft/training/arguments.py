"""What a run trains and how: the Trainer's arguments with ViT's additions, LoRA, and distillation. Each group checks
its own fields on creation, before any data or checkpoint is read."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import get_token
from transformers import TrainingArguments

from ..checkpoints.arguments import check_model_source
from ..checkpoints.labels import check_label_matching
from ..hub.arguments import REPO_ID_RULE, check_repo_id, is_repo_id

LORA_METHODS = ("lora",)
LORA_BIASES = ("none", "lora_only", "all")
DISTILLATION_TYPES = ("soft", "hard")
TEACHER_DTYPE_NAMES = ("float32", "bfloat16", "float16")


def parse_layer_indices(student_layers: str, num_layers: int | None = None) -> list[int]:
    """`"0,4,8,11"` as distinct, increasing layer indices, each below `num_layers` when it is given."""
    try:
        layers = [int(part) for part in re.split(r"[,\s]+", str(student_layers).strip()) if part]
    except ValueError as error:
        raise ValueError(
            f"student_layers={student_layers!r}: give comma-separated layer indices, e.g. 0,4,8,11."
        ) from error
    below = num_layers if num_layers is not None else float("inf")
    if not layers or layers != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= below:
        where = f"each from 0 to {num_layers - 1} (the teacher has {num_layers})" if num_layers else "from 0"
        raise ValueError(
            f"student_layers={student_layers!r}: give distinct teacher layers in increasing order, {where}."
        )
    return layers


@dataclass
class ViTTrainingArguments(TrainingArguments):
    """TrainingArguments plus what ViT fine-tuning needs: layer decay, EMA and a frozen backbone."""

    layer_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise learning-rate decay (BEiT, Bao et al. 2022): block i of L gets lr * "
            "layer_decay^(L - i); the head gets lr. None turns it off."
        },
    )
    ema_decay: float | None = field(
        default=None,
        metadata={
            "help": "Keep an exponential moving average of the weights with this decay (e.g. 0.999); the "
            "average is what is evaluated and saved."
        },
    )
    freeze_backbone: bool = field(
        default=False, metadata={"help": "Train the classifier head(s) only (a linear probe)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: images are decoded and transformed on the fly."}
    )
    metric_for_best_model: str | None = field(
        default="accuracy", metadata={"help": "Metric that picks the best checkpoint (with load_best_model_at_end)."}
    )
    # transformers 5 dropped its own field of this name.
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Remove the previous run's model, adapter, results, plots, card, recipe and checkpoints "
            "from output_dir first. Without it, a run into a folder that holds another run is refused."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay={self.layer_decay} must be in (0, 1], e.g. 0.65; unset turns it off.")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay} must be between 0 and 1, e.g. 0.999; unset turns it off.")
        if self.ema_decay is not None and self.load_best_model_at_end:
            raise ValueError(
                "ema_decay with load_best_model_at_end is not supported: checkpoints hold the trained "
                "weights, the EMA sits beside them. Turn one of them off."
            )
        if self.push_to_hub:
            self._check_push_to_hub()

    def _check_push_to_hub(self) -> None:
        """
        Checks the repo id and the token of a `push_to_hub: true` run before any data is loaded, so that the run does
        not fail at its first push, after hours of training.
        """
        if self.hub_model_id is not None:
            check_repo_id(self.hub_model_id, "hub_model_id")
        elif not is_repo_id(name := Path(self.output_dir).absolute().name):  # the Trainer's default repo name
            raise ValueError(
                f"push_to_hub: true without hub_model_id names the repo after output_dir, {name!r}, "
                f"which is not a valid Hub repo id: set hub_model_id. {REPO_ID_RULE}"
            )
        # get_token: HF_TOKEN, or the token `hf auth login` saved.
        if self.hub_token is None and get_token() is None:
            raise ValueError(
                "push_to_hub: true needs a Hub token with write access, and none was found: set the "
                "HF_TOKEN environment variable, run `hf auth login`, or set hub_token. Or set "
                "push_to_hub: false and push the output directory later with `vit-ft push`."
            )

    def check_trains(self) -> None:
        """Raises unless the run's length is positive: called for runs that have training data."""
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(
                f"max_steps={self.max_steps}: give a positive number of steps, or -1 to train for num_train_epochs."
            )
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ValueError(
                f"num_train_epochs={self.num_train_epochs:g}: give a positive number of epochs (or a "
                "positive max_steps)."
            )


@dataclass
class LoraArguments:
    """LoRA adapters (peft) on the model's linear layers; the classifier head(s) train in full."""

    peft_method: str | None = field(
        default=None, metadata={"help": "`lora` trains LoRA adapters (peft) and the classifier head(s) only."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=16, metadata={"help": "LoRA scaling: updates are scaled by alpha / r."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target: str = field(
        default="qv",
        metadata={
            "help": "`qv` (q_proj, v_proj), `attention` (q/k/v/o_proj), `all-linear` (attention and MLP), or "
            "a comma-separated list of module names, e.g. `q_proj,v_proj,fc1`."
        },
    )
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA (DoRA, Liu et al. 2024)."})
    use_rslora: bool = field(
        default=False, metadata={"help": "Rank-stabilised LoRA: scale by alpha / sqrt(r) (Kalajdzievski 2023)."}
    )
    lora_bias: str = field(
        default="none", metadata={"help": "Biases to train: `none`, `lora_only` (of targeted layers) or `all`."}
    )

    def __post_init__(self):
        if self.peft_method is not None and self.peft_method not in LORA_METHODS:
            raise ValueError(f"peft_method={self.peft_method!r}: the one method supported is `lora`.")
        if self.lora_bias not in LORA_BIASES:
            raise ValueError(f"lora_bias={self.lora_bias!r}: choose one of {', '.join(LORA_BIASES)}.")
        if self.lora_r < 1:
            raise ValueError(f"lora_r={self.lora_r} must be a positive rank, e.g. 8.")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout={self.lora_dropout} is a probability: give a value from 0 to below 1.")
        if not self.lora_target.strip(" ,"):
            raise ValueError("lora_target is empty: give a preset (qv, attention, all-linear) or module names.")

    @property
    def enabled(self) -> bool:
        return self.peft_method is not None


@dataclass
class DistillationArguments:
    """Distillation from a teacher (Hinton et al. 2015; DeiT, Touvron et al. 2021), and students cut from it."""

    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Distil from this teacher: a vit_ft model, a transformers ViT/DeiT checkpoint, a "
            "timm-converted directory or a LoRA adapter (merged). Its labels must be the data's."
        },
    )
    distillation_type: str = field(
        default="soft",
        metadata={
            "help": "`soft`: KL divergence to the teacher's softened probabilities (Hinton et al. 2015); "
            "`hard`: cross-entropy on the teacher's top class (DeiT)."
        },
    )
    distillation_alpha: float = field(
        default=0.5, metadata={"help": "Weight of the teacher's loss; the labels' loss gets 1 - alpha."}
    )
    distillation_temperature: float = field(
        default=1.0, metadata={"help": "Softmax temperature of soft distillation (the loss is scaled by its square)."}
    )
    teacher_dtype: str = field(
        default="float32", metadata={"help": "dtype the teacher runs in: float32, bfloat16 or float16."}
    )
    teacher_label_matching: str = field(
        default="auto",
        metadata={
            "help": "How the teacher's classes are matched to the data's. `name`: the same names in the same order. "
            "`index`: by position, when the counts agree. `auto`: by name, or by position where every name that "
            "differs is one the teacher repeats that the dataset made unique with a numeric suffix (ImageNet's two "
            "`crane` classes, `crane` and `crane2` in the data)."
        },
    )
    student_from_teacher: bool = field(
        default=False,
        metadata={
            "help": "The student is a depth-pruned copy of the teacher (its student_layers, embeddings, final "
            "norm and heads), not model_name_or_path or preset."
        },
    )
    student_layers: str | None = field(
        default=None, metadata={"help": "Teacher layers the student keeps, e.g. `0,4,8,11` (student_from_teacher)."}
    )

    def __post_init__(self):
        if self.distillation_type not in DISTILLATION_TYPES:
            raise ValueError(f"distillation_type={self.distillation_type!r}: choose soft or hard.")
        if not 0 <= self.distillation_alpha <= 1:
            raise ValueError(f"distillation_alpha={self.distillation_alpha} is a weight: give a value from 0 to 1.")
        if self.distillation_temperature <= 0:
            raise ValueError(f"distillation_temperature={self.distillation_temperature} must be positive, e.g. 2.")
        if self.teacher_dtype not in TEACHER_DTYPE_NAMES:
            raise ValueError(f"teacher_dtype={self.teacher_dtype!r}: choose one of {', '.join(TEACHER_DTYPE_NAMES)}.")
        check_label_matching(self.teacher_label_matching, "teacher_label_matching")
        if self.teacher_label_matching != "auto" and not self.teacher_model_name_or_path:
            raise ValueError(
                f"teacher_label_matching={self.teacher_label_matching} needs teacher_model_name_or_path: without a "
                "teacher there are no classes to match. Unset it, or set the teacher."
            )
        if self.student_from_teacher and not self.teacher_model_name_or_path:
            raise ValueError("student_from_teacher needs teacher_model_name_or_path: the teacher to cut it from.")
        if self.student_from_teacher and not self.student_layers:
            raise ValueError("student_from_teacher needs student_layers: the teacher layers to keep, e.g. 0,4,8,11.")
        if self.student_layers is not None:
            parse_layer_indices(self.student_layers)
        if self.teacher_model_name_or_path:
            check_model_source(self.teacher_model_name_or_path, "teacher_model_name_or_path")

    @property
    def enabled(self) -> bool:
        return self.teacher_model_name_or_path is not None
