"""`vit-ft train`: one run, from recipe to saved model, metrics and plots."""

import json
import logging
import os
from pathlib import Path

import transformers
from transformers import set_seed

from .arguments import DataArguments, ModelArguments, ViTTrainingArguments
from .checkpoints.loading import build_model, check_model_source, freeze_backbone, hub_options, parameter_counts
from .data.corruptions import data_transform, with_data_corruptions
from .data.datasets import load_image_datasets
from .data.epochs import EpochDataset
from .data.transforms import (
    ExampleTransform,
    build_eval_transform,
    build_train_transform,
    collate_images,
)
from .evaluation.metrics import ClassificationMetrics, first_logits
from .evaluation.plots import plot_confusion_matrix, plot_training_curves
from .hub.card import run_environment, write_model_card
from .hub.push import check_push_to_hub, push_trained_model
from .model.modeling_vit_ft import ViTForImageClassification
from .recipe import save_resolved_recipe
from .training.distillation import DISTILLATION_TYPES, Teacher, depth_pruned_student, load_teacher_model
from .training.lora import add_lora, write_adapter_record
from .training.mixing import BatchMixer
from .training.optimization import EMACallback
from .training.trainer import ViTTrainer

logger = logging.getLogger(__name__)


def _check(args: ViTTrainingArguments) -> None:
    if args.ema_decay is not None and args.load_best_model_at_end:
        raise ValueError("ema_decay with load_best_model_at_end is not supported: checkpoints hold the trained "
                         "weights, the EMA sits beside them. Turn one of them off.")  # fmt: skip
    if args.distillation_type not in DISTILLATION_TYPES:
        raise ValueError(f"distillation_type={args.distillation_type!r}: choose soft or hard.")


def _resolve_local_paths(model_args: ModelArguments, args: ViTTrainingArguments) -> None:
    """
    Local model and teacher directories become absolute paths, so the saved recipe and the model card tell them
    from Hub ids (`outputs/digits` could be either) from any working directory.
    """
    for arguments, name in ((model_args, "model_name_or_path"), (model_args, "base_model"),
                            (args, "teacher_model_name_or_path")):  # fmt: skip
        value = getattr(arguments, name)
        if not value:
            continue
        check_model_source(value, name)
        if os.path.isdir(value):
            setattr(arguments, name, os.path.abspath(value))


def _student_and_teacher(
    model_args: ModelArguments, args: ViTTrainingArguments, label_names: list[str]
) -> tuple[ViTForImageClassification, object, Teacher | None]:
    """The model to train and its image processor, and the teacher it distils from (None without one)."""
    if not args.teacher_model_name_or_path:
        if model_args.student_from_teacher:
            raise ValueError("student_from_teacher needs teacher_model_name_or_path: the teacher to cut it from.")
        return *build_model(model_args, label_names), None
    teacher_model, teacher_processor = load_teacher_model(
        args.teacher_model_name_or_path, label_names, hub_options(model_args)
    )
    if model_args.student_from_teacher:
        if not model_args.student_layers:
            raise ValueError("student_from_teacher needs student_layers: the teacher layers to keep, e.g. 0,4,8,11.")
        overrides = json.loads(model_args.model_overrides) if model_args.model_overrides else {}
        model, processor = depth_pruned_student(teacher_model, model_args.student_layers, overrides), teacher_processor
    else:
        model, processor = build_model(model_args, label_names)
    return model, processor, Teacher(teacher_model, teacher_processor, processor, args.teacher_dtype)


def build_trainer(
    model_args: ModelArguments, data_args: DataArguments, args: ViTTrainingArguments
) -> tuple[ViTTrainer, dict, list[str]]:
    """
    The trainer of a run, ready to train: model, data and transforms; the resolved recipe (and a LoRA run's
    adapter record) already in `args.output_dir`. Returns it, the data splits and the label names.
    """
    _check(args)
    check_push_to_hub(args)
    _resolve_local_paths(model_args, args)
    transformers.utils.logging.set_verbosity(args.get_process_log_level())
    set_seed(args.seed)
    data, label_names = load_image_datasets(data_args, args.seed, model_args.cache_dir, model_args.token)
    model, processor, teacher = _student_and_teacher(model_args, args, label_names)
    if model_args.freeze_backbone:
        freeze_backbone(model)
    if model_args.peft_method:
        model = add_lora(model, model_args)
    total, trainable = parameter_counts(model)
    logger.warning(f"Model: {total:,} parameters, {trainable:,} trainable ({100 * trainable / total:.2f}%).")

    strict = data_args.strict_images
    train_transform = ExampleTransform(build_train_transform(processor, args), strict, seed=args.seed)
    if "train" in data:
        # Read by (epoch, row) keys, which take the epoch to the augmentations in every dataloader worker.
        data["train"] = EpochDataset(data["train"], data_transform(train_transform, data_args))
    for split in ("validation", "test"):
        if split in data:
            eval_transform = ExampleTransform(build_eval_transform(processor), strict)
            data[split] = with_data_corruptions(data[split], eval_transform, data_args)

    ema = EMACallback(args.ema_decay) if args.ema_decay is not None else None
    trainer = ViTTrainer(
        model=model,
        args=args,
        train_dataset=data.get("train"),
        eval_dataset=data.get("validation"),
        data_collator=collate_images,
        processing_class=processor,
        compute_metrics=ClassificationMetrics(len(label_names)),
        preprocess_logits_for_metrics=first_logits,
        batch_mixer=BatchMixer(len(label_names), args.mixup_alpha, args.cutmix_alpha, args.label_smoothing_factor),
        ema=ema,
        teacher=teacher,
    )
    if args.should_save:
        save_resolved_recipe((model_args, data_args, args), args.output_dir)
        if model_args.peft_method:
            overrides = json.loads(model_args.model_overrides) if model_args.model_overrides else {}
            write_adapter_record(args.output_dir, model, overrides)
    return trainer, data, label_names


def run_training(model_args: ModelArguments, data_args: DataArguments, args: ViTTrainingArguments) -> dict:
    """Trains, evaluates on validation and test, saves the model, metrics and plots in `args.output_dir`."""
    trainer, data, label_names = build_trainer(model_args, data_args, args)
    ema = trainer.ema
    total, trainable = parameter_counts(trainer.model)
    results = {}
    if "train" in data:
        outcome = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
        if ema is not None:
            ema.copy_to(trainer.model)
        trainer.save_model(_internal_call=True)  # with push_to_hub, push once, at the end, with every result
        metrics = {**outcome.metrics, "train_trainable_parameters": trainable, "train_total_parameters": total,
                   "train_skipped_images": trainer.skipped_training_images()}  # fmt: skip
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)  # also gathered into all_results.json
        results.update(metrics)
    if "validation" in data:
        metrics = trainer.evaluate(data["validation"], metric_key_prefix="eval")
        trainer.save_metrics("eval", metrics)
        results.update(metrics)
    if "test" in data:
        prediction = trainer.predict(data["test"], metric_key_prefix="test")
        trainer.save_metrics("test", prediction.metrics)
        results.update(prediction.metrics)
        if args.should_save:
            predicted = prediction.predictions.argmax(-1)
            plot_confusion_matrix(prediction.label_ids, predicted, label_names,
                                  Path(args.output_dir) / "confusion_matrix.png")  # fmt: skip
    if args.should_save:
        plot_training_curves(trainer.state.log_history, Path(args.output_dir) / "training_curves.png")
    trainer.save_metrics("run", run_environment(args))  # the hardware, for the model card
    if args.should_save and model_args.peft_method:
        # peft's save_pretrained leaves a template README.md; the adapter's card replaces it.
        write_model_card(args.output_dir, args.hub_model_id or Path(args.output_dir).name)
    push_trained_model(trainer)
    return results
