"""`vit-ft train`: one run, from recipe to saved model, metrics and plots."""

import logging
import os
import shutil
import signal
from pathlib import Path

import transformers
from transformers import set_seed

from .checkpoint_integrity import check_checkpoint_fits, resolve_resume_checkpoint, set_aside_checkpoints
from .checkpoints.arguments import ModelArguments
from .checkpoints.loading import build_model, freeze_backbone, parameter_counts
from .data.corruptions import corrupted_transform, with_corruption
from .data.datasets import load_image_datasets, train_subset_record
from .data.epochs import EpochDataset
from .data.readers import StreamedSplit
from .data.streams import TrainStream
from .data.transforms import (
    ExampleTransform,
    build_eval_transform,
    build_train_transform,
    collate_images,
)
from .evaluation.explain import write_attention_grid
from .evaluation.metrics import ClassificationMetrics, first_logits
from .evaluation.plots import plot_confusion_matrix, plot_training_curves
from .hub.card import run_environment, write_model_card
from .hub.push import push_trained_model
from .model.modeling_vit_ft import ViTForImageClassification
from .output_dir import (
    ATTENTION_MAPS,
    CONFUSION_MATRIX,
    ONNX_FOLDER,
    TRAIN_SUBSET,
    TRAINING_CURVES,
    TrainingFacts,
    checkpoint_dir,
    claim_output_dir,
    write_json,
)
from .recipe import Recipe, save_resolved_recipe
from .training.arguments import DistillationArguments
from .training.checksums import ChecksumCallback
from .training.distillation import Teacher, depth_pruned_student, load_teacher_model
from .training.divergence import DivergenceCallback
from .training.lora import add_lora, write_adapter_record
from .training.mixing import BatchMixer
from .training.optimization import EMACallback
from .training.preemption import PreemptionCallback
from .training.trainer import ViTTrainer
from .transformers_internals import save_without_push

logger = logging.getLogger(__name__)


class TrainingStopped(Exception):
    """
    Training stopped on a signal (SIGTERM, SIGINT) with its checkpoint saved: `checkpoint`, after `step`; None when the
    signal came after the last step, the trained model then saved in `output_dir` without evaluation. `announce` is
    True on the process that should tell the user (the main one). The exit code is the shell's for the signal.
    """

    def __init__(self, signal_name: str, step: int, checkpoint: Path | None, output_dir: str, announce: bool):
        self.signal_name, self.step, self.checkpoint, self.output_dir = signal_name, step, checkpoint, output_dir
        self.announce = announce
        self.exit_code = 128 + signal.Signals[signal_name].value  # 143 for SIGTERM, 130 for SIGINT
        super().__init__(f"stopped by {signal_name} after step {step}")


def resolve_local_paths(model: ModelArguments, distillation: DistillationArguments | None = None) -> None:
    """
    Local model and teacher directories become absolute paths, so the saved recipe and the model card tell them
    from Hub ids (`outputs/digits` could be either) from any working directory.
    """
    named = [(model, "model_name_or_path"), (model, "base_model")]
    if distillation is not None:
        named.append((distillation, "teacher_model_name_or_path"))
    for arguments, name in named:
        value = getattr(arguments, name)
        if value and os.path.isdir(value):
            setattr(arguments, name, os.path.abspath(value))


def _student_and_teacher(
    recipe: Recipe, label_names: list[str]
) -> tuple[ViTForImageClassification, object, Teacher | None]:
    """The model to train and its image processor, and the teacher it distils from (None without one)."""
    distillation = recipe.distillation
    if not distillation.enabled:
        return *build_model(recipe.model, label_names, for_lora=recipe.lora.enabled), None
    teacher_model, teacher_processor = load_teacher_model(
        distillation.teacher_model_name_or_path,
        label_names,
        recipe.model.hub_options,
        recipe.model.trust_remote_code,
        distillation.teacher_label_matching,
    )
    if distillation.student_from_teacher:
        student = depth_pruned_student(teacher_model, distillation.student_layers, recipe.model.model_overrides)
        model, processor = student, teacher_processor
    else:
        model, processor = build_model(recipe.model, label_names, for_lora=recipe.lora.enabled)
    return model, processor, Teacher(teacher_model, teacher_processor, processor, distillation.teacher_dtype)


def build_trainer(recipe: Recipe) -> tuple[ViTTrainer, dict, list[str]]:
    """
    The trainer of a run, ready to train: model, data and transforms; the resolved recipe (and a LoRA run's
    adapter record) already in its `output_dir`. Returns it, the data splits and the label names.
    """
    args, data_args = recipe.training, recipe.data
    resolve_local_paths(recipe.model, recipe.distillation)
    transformers.utils.logging.set_verbosity(args.get_process_log_level())
    set_seed(args.seed)
    data, label_names = load_image_datasets(data_args, args.seed, recipe.model.cache_dir, recipe.model.token)
    few_shot = None
    if data_args.train_samples_per_class is not None and "train" in data:
        few_shot = train_subset_record(data["train"], data_args.train_samples_per_class, args.seed, label_names)
    model, processor, teacher = _student_and_teacher(recipe, label_names)
    if args.resume_from_checkpoint:
        # Before the recipe is saved over the run's: the error points at the run's model_overrides there.
        check_checkpoint_fits(args.resume_from_checkpoint, model)
    if args.freeze_backbone:
        freeze_backbone(model)
    if recipe.lora.enabled:
        model = add_lora(model, recipe.lora, recipe.model.model_name_or_path)
    total, trainable = parameter_counts(model)
    logger.warning(f"Model: {total:,} parameters, {trainable:,} trainable ({100 * trainable / total:.2f}%).")

    strict = data_args.strict_images
    train_transform = ExampleTransform(build_train_transform(processor, recipe.augmentation), strict, seed=args.seed)
    train_transform = corrupted_transform(train_transform, *data_args.corruption)
    if isinstance(data.get("train"), StreamedSplit):
        data["train"] = train_stream(data["train"], train_transform, recipe)
    elif "train" in data:
        # Read by (epoch, row) keys, which take the epoch to the augmentations in every dataloader worker.
        data["train"] = EpochDataset(data["train"], train_transform)
    for split in ("validation", "test"):
        if split in data:
            eval_transform = ExampleTransform(build_eval_transform(processor), strict)
            data[split] = with_corruption(data[split], eval_transform, *data_args.corruption)

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
        batch_mixer=BatchMixer(
            len(label_names),
            recipe.augmentation.mixup_alpha,
            recipe.augmentation.cutmix_alpha,
            args.label_smoothing_factor,
        ),
        ema=ema,
        teacher=teacher,
        distillation=recipe.distillation if teacher is not None else None,
    )
    if args.should_save:
        save_resolved_recipe(recipe, args.output_dir)
        if few_shot is not None:
            write_json(Path(args.output_dir) / TRAIN_SUBSET, few_shot)
        if recipe.lora.enabled:
            write_adapter_record(args.output_dir, model, recipe.model.model_overrides)
    return trainer, data, label_names


def train_stream(split: StreamedSplit, transform, recipe: Recipe) -> TrainStream:
    """This process's part of a streamed train split; an epoch needs a declared example count, or max_steps."""
    args, data_args = recipe.training, recipe.data
    examples = data_args.train_examples or split.examples
    if examples is None and args.max_steps <= 0:
        raise ValueError(
            f"The streamed train split ({split.shard_names[0]}, ...) declares no example count, so an epoch has no "
            "length: set train_examples (the split's example count) or max_steps."
        )
    if args.dataloader_persistent_workers:
        raise ValueError(
            "dataloader_persistent_workers with a streamed train split: workers that persist keep the epoch they "
            "started in, and would read every epoch in its order. Unset it (streams start their workers each epoch)."
        )
    split.examples = examples
    return TrainStream(
        split,
        transform,
        args.per_device_train_batch_size,
        args.seed,
        data_args.shuffle_shards,
        args.process_index,
        args.world_size,
        data_args.strict_images,
    )


def run_training(recipe: Recipe) -> dict:
    """
    Trains, evaluates on validation and test, saves the model, metrics and plots in the recipe's `output_dir`, which
    it holds for the whole run (`claim_output_dir`): a folder that holds another run, or that a live run is using, is
    refused before any data or checkpoint is loaded.
    """
    args = recipe.training
    resolve_local_paths(recipe.model, recipe.distillation)
    # Read-only, so before the claim: a refused checkpoint leaves the folder exactly as it was.
    args.resume_from_checkpoint = resolve_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    saves = args.should_save  # only the process that saves claims: the others would see its files as another run's
    with claim_output_dir(args.output_dir, args.overwrite_output_dir, args.resume_from_checkpoint, saves):
        return _train_evaluate_save(recipe)


def remove_stale_onnx(output_dir: str) -> None:
    """
    Removes the onnx/ folder of `output_dir` (a resumed run's, written by `vit-ft push --with_onnx`) before the final
    model is saved there: those files answer for the weights it replaces.
    """
    folder = Path(output_dir) / ONNX_FOLDER
    if folder.is_dir():
        shutil.rmtree(folder)
        logger.warning(
            f"Removed {folder}: its ONNX files were exported from the weights this run replaces (`vit-ft "
            "push --with_onnx` writes them again)."
        )


def train_and_save(trainer: ViTTrainer) -> dict:
    """
    Trains `trainer` (from its args' `resume_from_checkpoint`, set aside the checkpoints newer than it) under the
    preemption, divergence and checksum callbacks, saves the trained model (the EMA weights with `ema_decay`) in its
    `output_dir` and writes the train metrics, which it returns. A signal stops it with `TrainingStopped`: at a step,
    with the checkpoint saved and nothing else; after the last step, with the model saved. `vit-ft train` and
    `vit-ft pretrain` both train through here.
    """
    args = trainer.args
    total, trainable = parameter_counts(trainer.model)
    if args.resume_from_checkpoint and args.should_save:
        set_aside_checkpoints(args.output_dir, args.resume_from_checkpoint, args.save_total_limit)
    stop = PreemptionCallback()
    # In this order: the checksums after every file of a checkpoint (EMA's too), the divergence check after the
    # preemption's request to save.
    for callback in (stop, DivergenceCallback(args.resume_from_checkpoint), ChecksumCallback()):
        trainer.add_callback(callback)
    with stop.handling_signals():
        outcome = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    if stop.step is not None:
        # No evaluation and no final save: the checkpoint is the run's state, and the run resumes from it.
        checkpoint = checkpoint_dir(args.output_dir, stop.step)
        announce = trainer.is_world_process_zero()
        raise TrainingStopped(stop.signal_name, stop.step, checkpoint, args.output_dir, announce)
    if trainer.ema is not None:
        trainer.ema.copy_to(trainer.model)
    if args.should_save:
        remove_stale_onnx(args.output_dir)
    save_without_push(trainer)  # with push_to_hub, push once, at the end, with every result
    if stop.received is not None:
        # The signal came after the last step: the trained model is saved, the evaluation left out.
        step = trainer.state.global_step
        raise TrainingStopped(stop.received.name, step, None, args.output_dir, trainer.is_world_process_zero())
    facts = TrainingFacts(
        trainable_parameters=trainable, total_parameters=total, skipped_images=trainer.skipped_training_images()
    )
    metrics = {**outcome.metrics, **facts.as_results()}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)  # also gathered into all_results.json
    return metrics


def _train_evaluate_save(recipe: Recipe) -> dict:
    args = recipe.training
    trainer, data, label_names = build_trainer(recipe)
    results = {}
    if "train" in data:
        results.update(train_and_save(trainer))
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
            plot_confusion_matrix(
                prediction.label_ids, predicted, label_names, Path(args.output_dir) / CONFUSION_MATRIX
            )
            write_attention_grid(args.output_dir, data["test"], Path(args.output_dir) / ATTENTION_MAPS, args.device)
    if args.should_save:
        plot_training_curves(trainer.state.log_history, Path(args.output_dir) / TRAINING_CURVES)
    trainer.save_metrics("run", run_environment(args))  # the hardware, for the model card
    if args.should_save and recipe.lora.enabled:
        # peft's save_pretrained leaves a template README.md; the adapter's card replaces it.
        write_model_card(args.output_dir, args.hub_model_id or Path(args.output_dir).name)
    push_trained_model(trainer, recipe.hub.with_demo)
    return results
