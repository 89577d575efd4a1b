"""The configuration of `vit-ft train`: model, data and training dataclasses, parsed by HfArgumentParser."""

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A vit_ft directory or Hub id, a transformers ViT/DeiT checkpoint (converted on the fly) or "
                          "a timm-converted directory. Leave empty to train `preset` from scratch."},
    )  # fmt: skip
    preset: str | None = field(
        default=None, metadata={"help": "Architecture to train from scratch, e.g. vit_tiny_patch16_224."}
    )
    model_overrides: str | None = field(
        default=None,
        metadata={"help": 'JSON object of ViTConfig fields set on the model, e.g. \'{"image_size": 32, "patch_size": '
                          '4, "drop_path_rate": 0.1}\'.'},
    )  # fmt: skip
    image_processor_name: str | None = field(
        default=None, metadata={"help": "Image processor to size and normalise with; defaults to the model's."}
    )
    freeze_backbone: bool = field(
        default=False, metadata={"help": "Train the classifier head(s) only (a linear probe)."}
    )
    base_model: str | None = field(
        default=None,
        metadata={"help": "Base model of a LoRA adapter given as model_name_or_path, when the one its "
                          "adapter_config.json names has moved."},
    )  # fmt: skip
    peft_method: str | None = field(
        default=None, metadata={"help": "`lora` trains LoRA adapters (peft) and the classifier head(s) only."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=16, metadata={"help": "LoRA scaling: updates are scaled by alpha / r."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target: str = field(
        default="qv",
        metadata={"help": "`qv` (q_proj, v_proj), `attention` (q/k/v/o_proj), `all-linear` (attention and MLP), or "
                          "a comma-separated list of module names, e.g. `q_proj,v_proj,fc1`."},
    )  # fmt: skip
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA (DoRA, Liu et al. 2024)."})
    use_rslora: bool = field(
        default=False, metadata={"help": "Rank-stabilised LoRA: scale by alpha / sqrt(r) (Kalajdzievski 2023)."}
    )
    lora_bias: str = field(
        default="none", metadata={"help": "Biases to train: `none`, `lora_only` (of targeted layers) or `all`."}
    )
    student_from_teacher: bool = field(
        default=False,
        metadata={"help": "Distillation: the student is a depth-pruned copy of the teacher (its student_layers, "
                          "embeddings, final norm and heads), not model_name_or_path or preset."},
    )  # fmt: skip
    student_layers: str | None = field(
        default=None, metadata={"help": "Teacher layers the student keeps, e.g. `0,4,8,11` (student_from_teacher)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token; HF_TOKEN is used when unset."})
    license: str | None = field(
        default=None, metadata={"help": "Hub license id of the trained model for its card, e.g. apache-2.0 or mit."}
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A Hub dataset id (e.g. uoft-cs/cifar10), or `digits` for scikit-learn's built-in 8x8 "
                          "digits (offline)."},
    )  # fmt: skip
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_dir: str | None = field(default=None, metadata={"help": "Image folder (one folder per class) to train on."})
    validation_dir: str | None = field(default=None, metadata={"help": "Image folder to evaluate on."})
    test_dir: str | None = field(default=None, metadata={"help": "Image folder to test on."})
    image_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the images; detected among image, img, pixel_values, ..."}
    )
    label_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the labels; detected among label, labels, fine_label, ..."}
    )
    train_val_split: float = field(
        default=0.15, metadata={"help": "Share of train carved out for validation when there is no validation split."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training examples."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many validation and test examples."}
    )
    image_corruptions: str | None = field(
        default=None,
        metadata={"help": "Comma-separated corruptions (gaussian_noise, gaussian_blur, jpeg, low_resolution) applied "
                          "in that order to every image of every split, before the transforms: a low-quality version "
                          "of the data, the same in every run (noise seeded per image from corruption_seed)."},
    )  # fmt: skip
    corruption_severity: int = field(default=3, metadata={"help": "Severity 1..5 of image_corruptions."})
    corruption_seed: int = field(default=0, metadata={"help": "Seed of image_corruptions' noise."})
    strict_images: bool = field(
        default=False,
        metadata={"help": "Make an image that cannot be decoded fatal. By default it is left out of its batch, named "
                          "in a warning and counted in the results (train_skipped_images, eval_skipped_images, "
                          "test_skipped_images)."},
    )  # fmt: skip


@dataclass
class ViTTrainingArguments(TrainingArguments):
    """TrainingArguments plus what ViT fine-tuning needs: augmentation, layer decay, EMA."""

    layer_decay: float | None = field(
        default=None,
        metadata={"help": "Layer-wise learning-rate decay (BEiT, Bao et al. 2022): block i of L gets lr * "
                          "layer_decay^(L - i); the head gets lr. None turns it off."},
    )  # fmt: skip
    ema_decay: float | None = field(
        default=None,
        metadata={"help": "Keep an exponential moving average of the weights with this decay (e.g. 0.999); the "
                          "average is what is evaluated and saved."},
    )  # fmt: skip
    auto_augment: str | None = field(
        default=None, metadata={"help": "`randaugment` or `trivialaugment` (TrivialAugmentWide); None for neither."}
    )
    random_resized_crop_min_scale: float = field(
        default=0.08, metadata={"help": "Smallest share of the image area RandomResizedCrop keeps (timm: 0.08)."}
    )
    horizontal_flip: bool = field(default=True, metadata={"help": "Random horizontal flips (off for digits)."})
    random_erasing: float = field(default=0.0, metadata={"help": "Probability of RandomErasing per image."})
    mixup_alpha: float = field(default=0.0, metadata={"help": "MixUp Beta(alpha, alpha); 0 turns it off."})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0 turns it off."})
    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Distil from this teacher: a vit_ft model, a transformers ViT/DeiT checkpoint, a "
                          "timm-converted directory or a LoRA adapter (merged). Its labels must be the data's."},
    )  # fmt: skip
    distillation_type: str = field(
        default="soft",
        metadata={"help": "`soft`: KL divergence to the teacher's softened probabilities (Hinton et al. 2015); "
                          "`hard`: cross-entropy on the teacher's top class (DeiT)."},
    )  # fmt: skip
    distillation_alpha: float = field(
        default=0.5, metadata={"help": "Weight of the teacher's loss; the labels' loss gets 1 - alpha."}
    )
    distillation_temperature: float = field(
        default=1.0, metadata={"help": "Softmax temperature of soft distillation (the loss is scaled by its square)."}
    )
    teacher_dtype: str = field(
        default="float32", metadata={"help": "dtype the teacher runs in: float32, bfloat16 or float16."}
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
        metadata={"help": "Remove the previous run's model, adapter, results, plots, card, recipe and checkpoints "
                          "from output_dir first. Without it, a run into a folder that holds another run is refused."},
    )  # fmt: skip
