"""`vit-ft pretrain`: one masked-autoencoding run (He et al. 2022), from recipe to a saved encoder that `vit-ft train`
fine-tunes (`model_name_or_path: OUTPUT_DIR`), with loss curves, reconstructions.png and a model card.

    vit-ft pretrain recipes/pretrain/digits_mae.yaml
    accelerate launch -m vit_ft.cli pretrain recipes/pretrain/digits_mae.yaml
"""

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import transformers
from transformers import set_seed

from .checkpoint_integrity import check_checkpoint_fits, resolve_resume_checkpoint
from .checkpoints.adapters import is_adapter
from .checkpoints.arguments import ModelArguments
from .checkpoints.loading import default_processor, load_processor
from .checkpoints.pretrained import load_checkpoint
from .data.arguments import AugmentationArguments
from .data.epochs import EpochDataset
from .data.readers import StreamedSplit
from .data.transforms import ExampleTransform, build_eval_transform, build_train_transform, collate_images
from .evaluation.plots import plot_training_curves
from .hub.arguments import HubArguments
from .hub.card import run_environment, write_model_card
from .hub.push import push_trained_model
from .model import PRESETS, ViTConfig, ViTForMaskedAutoencoding
from .output_dir import ADAPTER_CONFIG, RECONSTRUCTIONS, TRAINING_CURVES, claim_output_dir
from .pretraining.arguments import MaskedAutoencodingArguments, PretrainingDataArguments
from .pretraining.data import load_unlabelled_images
from .pretraining.reconstructions import plot_reconstructions
from .recipe import read_recipe, save_resolved_recipe
from .train import resolve_local_paths, train_and_save, train_stream
from .training.arguments import ViTTrainingArguments
from .training.trainer import ViTTrainer

logger = logging.getLogger(__name__)

PRETRAIN_USAGE = "vit-ft pretrain RECIPE.yaml [--field value ...]"
# A pretraining has no accuracy: the best checkpoint, if one is kept, is the one of least evaluation loss.
PRETRAINING_DEFAULTS = {"metric_for_best_model": "loss"}


@dataclass
class PretrainingRecipe:
    """The argument groups of one pretraining run, in the order `vit-ft pretrain --help` lists them."""

    model: ModelArguments
    data: PretrainingDataArguments
    masked_autoencoding: MaskedAutoencodingArguments
    hub: HubArguments
    training: ViTTrainingArguments

    def __post_init__(self):
        check_pretraining_recipe(self)

    @property
    def groups(self) -> tuple:
        return tuple(getattr(self, group.name) for group in fields(self))


def check_pretraining_recipe(recipe: PretrainingRecipe) -> None:
    """The checks that span groups, before any data or checkpoint is read."""
    model, training = recipe.model, recipe.training
    if bool(model.model_name_or_path) == bool(model.preset):
        raise ValueError(
            "Set one of model_name_or_path (a checkpoint to pretrain further) and preset (an "
            "architecture to pretrain from scratch)."
        )
    if model.model_name_or_path and (Path(model.model_name_or_path) / ADAPTER_CONFIG).is_file():
        raise ValueError(
            f"{model.model_name_or_path} is a LoRA adapter, which pretraining cannot start from: merge "
            f"it first (vit-ft merge-lora --adapter {model.model_name_or_path} --output DIR) and "
            "pretrain the merged model."
        )
    if training.freeze_backbone:
        raise ValueError("freeze_backbone trains a classifier head only; a pretraining has none: unset it.")
    if recipe.hub.with_demo:
        raise ValueError(
            "with_demo: true pushes a demo of a classifier's answers, and a pretrained encoder has no "
            "classes to show: unset it, and push the fine-tuned model with --with_demo."
        )
    if model.preset:
        # The decoder's limits need the encoder's width: known here for a preset, at loading for a checkpoint.
        arch = model.preset.split(".", 1)[0]
        config = ViTConfig(**{**PRESETS[arch], **model.model_overrides, **recipe.masked_autoencoding.config_fields})
        config.check_masked_autoencoding()
    training.check_trains()


def read_pretraining_recipe(
    path: str | Path | None, overrides: list[str] | None = None, defaults: dict | None = None
) -> PretrainingRecipe:
    """`read_recipe` for `vit-ft pretrain`: the same YAML and flags, into a checked `PretrainingRecipe`."""
    return read_recipe(path, overrides, {**PRETRAINING_DEFAULTS, **(defaults or {})}, PretrainingRecipe)


def build_autoencoder(
    source: ModelArguments, method: MaskedAutoencodingArguments
) -> tuple[ViTForMaskedAutoencoding, object]:
    """
    The masked autoencoder to pretrain and its image processor: a preset from scratch, or the encoder of a checkpoint
    (a vit_ft classifier or pretraining output, a transformers ViT/DeiT) with the decoder `method` describes. A LoRA
    adapter is refused: pretraining changes every weight of the encoder.
    """
    overrides = {**source.model_overrides, **method.config_fields}
    if source.preset:
        config = ViTConfig(**{**PRESETS[source.preset.split(".", 1)[0]], **overrides})
        return ViTForMaskedAutoencoding(config), default_processor(config.image_size)
    path, hub_kwargs = source.model_name_or_path, source.hub_options
    if is_adapter(path, hub_kwargs):
        raise ValueError(
            f"{path} is a LoRA adapter, which pretraining cannot start from: merge it first (vit-ft "
            f"merge-lora --adapter {path} --output DIR) and pretrain the merged model."
        )
    model = load_checkpoint(
        path, ViTForMaskedAutoencoding, **overrides, trust_remote_code=source.trust_remote_code, **hub_kwargs
    )
    processor = load_processor(model, source.image_processor_name or path, hub_kwargs, source.trust_remote_code)
    return model, processor


def mae_augmentation(method: MaskedAutoencodingArguments) -> AugmentationArguments:
    """MAE's augmentation (He et al. 2022, A.1): a random resized crop and, unless turned off, horizontal flips."""
    return AugmentationArguments(
        random_resized_crop_min_scale=method.random_resized_crop_min_scale, horizontal_flip=method.horizontal_flip
    )


def build_pretrainer(recipe: PretrainingRecipe) -> tuple[ViTTrainer, dict]:
    """The trainer of a pretraining, ready to train, with the resolved recipe in its `output_dir`; and the data."""
    args, method = recipe.training, recipe.masked_autoencoding
    transformers.utils.logging.set_verbosity(args.get_process_log_level())
    set_seed(args.seed)
    model, processor = build_autoencoder(recipe.model, method)
    if args.resume_from_checkpoint:
        check_checkpoint_fits(args.resume_from_checkpoint, model)
    data = load_unlabelled_images(recipe.data, args.seed, recipe.model.cache_dir, recipe.model.token)
    strict = recipe.data.strict_images
    augment = build_train_transform(processor, mae_augmentation(method))
    train_transform = ExampleTransform(augment, strict, seed=args.seed)
    if isinstance(data["train"], StreamedSplit):
        data["train"] = train_stream(data["train"], train_transform, recipe)
    else:
        data["train"] = EpochDataset(data["train"], train_transform)
    data["validation"] = data["validation"].with_transform(ExampleTransform(build_eval_transform(processor), strict))
    args.prediction_loss_only = True  # the model's loss is the only evaluation
    trainer = ViTTrainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=collate_images,
        processing_class=processor,
    )
    if args.should_save:
        save_resolved_recipe(recipe, args.output_dir)
    return trainer, data


def run_pretraining(recipe: PretrainingRecipe) -> dict:
    """
    Pretrains, evaluates the reconstruction loss on the held-out images, and saves the model (encoder and decoder,
    with its image processor and remote code), results, loss curves, reconstructions.png and card in the recipe's
    `output_dir`, which it holds for the whole run as `vit-ft train` does (`claim_output_dir`).
    """
    args = recipe.training
    resolve_local_paths(recipe.model)
    args.resume_from_checkpoint = resolve_resume_checkpoint(args.output_dir, args.resume_from_checkpoint)
    with claim_output_dir(args.output_dir, args.overwrite_output_dir, args.resume_from_checkpoint, args.should_save):
        trainer, data = build_pretrainer(recipe)
        results = train_and_save(trainer)
        metrics = trainer.evaluate(data["validation"], metric_key_prefix="eval")
        trainer.save_metrics("eval", metrics)
        results.update(metrics)
        if args.should_save:
            output = Path(args.output_dir)
            plot_training_curves(trainer.state.log_history, output / TRAINING_CURVES)
            _write_reconstructions(trainer, data["validation"], recipe.masked_autoencoding, output / RECONSTRUCTIONS)
        trainer.save_metrics("run", run_environment(args))  # the hardware, for the model card
        if args.should_save:
            write_model_card(args.output_dir, args.hub_model_id or Path(args.output_dir).name)
        push_trained_model(trainer)
        return results


def _write_reconstructions(trainer: ViTTrainer, held_out, method: MaskedAutoencodingArguments, path: Path) -> None:
    """reconstructions.png of the first `num_reconstructions` held-out images, under a mask drawn from the seed."""
    count = min(method.num_reconstructions, len(held_out))
    if count == 0:
        return
    batch = collate_images([held_out[index] for index in range(count)])
    processor = trainer.processing_class
    model = trainer.accelerator.unwrap_model(trainer.model)
    pixel_values = batch["pixel_values"].to(next(model.parameters()).device)
    with torch.autocast(pixel_values.device.type, enabled=False):
        plot_reconstructions(model, pixel_values, processor.image_mean, processor.image_std, path, trainer.args.seed)
