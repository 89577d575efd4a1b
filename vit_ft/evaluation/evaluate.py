"""`vit-ft evaluate`: a saved model's metrics on a data split, clean and under image corruptions."""

import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader
from transformers import EvalPrediction

from ..checkpoints.labels import check_label_matching, match_labels
from ..data.arguments import DataArguments, check_corruption
from ..data.corruptions import corrupted_transform, with_corruption
from ..data.datasets import load_image_datasets
from ..data.transforms import SKIPPED_IMAGES, ExampleTransform, build_eval_transform, collate_images
from ..export.runtime import OnnxClassifier
from ..output_dir import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    EVALUATION_FIELDS,
    MODEL_WEIGHTS,
    MODEL_WEIGHTS_INDEX,
    ONNX_FOLDER,
    ONNX_MODEL,
    RECIPE,
    RESTORE_ADVICE,
    DamagedFileError,
    check_result_file,
    eval_file,
    read_yaml,
    robustness_file,
    write_json,
)
from .metrics import ClassificationMetrics
from .plots import plot_robustness
from .predictor import Predictor, load_predictor

logger = logging.getLogger(__name__)

_DATA_CORRUPTION_FIELDS = ("image_corruptions", "corruption_severity", "corruption_seed")


def evaluate_model(
    model_dir: str,
    data_args: DataArguments,
    split: str = "test",
    corruptions: list[str] | None = None,
    severity: int | list[int] = 3,
    batch_size: int = 64,
    output_file: str | None = None,
    seed: int = 0,
    base_model: str | None = None,
    onnx_file: str | None = None,
    overwrite: bool = False,
    trust_remote_code: bool = False,
    label_matching: str = "auto",
) -> dict:
    """
    Evaluates the vit_ft model (or LoRA adapter, on `base_model` or the base it names, or `vit-ft export` folder, run
    in ONNX Runtime from its `onnx_file`: see `load_predictor`) in `model_dir` on `split` of the data `data_args`
    names (its `image_corruptions` included), clean and then under each of `corruptions` (see
    `vit_ft.data.corruptions`) at `severity` (one, or a list of several), their noise seeded from `seed`. Writes the
    results as JSON to `output_file` (default `model_dir/robustness_<split>.json` with corruptions, else
    `model_dir/eval_<split>.json`; an `onnx_file` other than model.onnx adds its stem, as in
    `eval_test_model_quantized.json`) and returns them, with the file scored (`model_file`). With several severities,
    each corruption's scores are keyed by severity, and a plot of accuracy against severity goes beside the JSON
    (`robustness_<split>.png`).

    An existing results file (or its plot) is replaced only with `overwrite`; a file that is not an evaluate result
    (a model's config.json, any other file) never is. When the data has no validation split of its own, `validation`
    is carved from train exactly as the run did, with the fields its vit_ft_recipe.yaml recorded. The model's classes
    must be the data's by the rule `label_matching` (see `vit_ft.checkpoints.labels`).
    """
    check_label_matching(label_matching, "--label_matching")
    corruptions = list(corruptions or [])
    severities = [severity] if isinstance(severity, int) else list(severity)
    for name in corruptions:
        for level in severities:
            check_corruption(name, level)
    default_name = robustness_file(split, onnx_file) if corruptions else eval_file(split, onnx_file)
    output_file = Path(output_file or Path(model_dir) / default_name)
    plot_file = output_file.with_suffix(".png") if corruptions and len(severities) > 1 else None
    check_result_file(output_file, EVALUATION_FIELDS, "evaluate", overwrite, plot_file)
    predictor = load_predictor(model_dir, base_model, onnx_file, trust_remote_code)
    data, label_names, carving = load_split(model_dir, data_args, split)
    advice = "Evaluate on data with the model's classes in the same order, or fine-tune on this data."
    match_labels(predictor.id2label, label_names, "model", model_dir, advice, label_matching, "--label_matching")

    dataset = data[split]
    example_transform = ExampleTransform(build_eval_transform(predictor.preprocessing), strict=data_args.strict_images)
    metrics = ClassificationMetrics(len(label_names))
    clean_data = with_corruption(dataset, example_transform, *data_args.corruption)  # the data's own corruptions
    clean = _metrics(predictor, clean_data, metrics, batch_size)
    # The images scored: those that could not be decoded are left out of every block alike.
    results = {
        "model": str(model_dir),
        "model_file": _scored_file(predictor, model_dir, onnx_file),
        "split": split,
        "examples": len(dataset) - clean["skipped_images"],
        "skipped_images": clean["skipped_images"],
    }
    if carving:
        results["carved_from_train"] = carving  # the run's share, seed and caps, from its recipe
    if data_args.image_corruptions:
        # "clean" is then the low-quality data: say which.
        results["image_corruptions"] = {name: getattr(data_args, name) for name in _DATA_CORRUPTION_FIELDS}
    results["clean"] = clean
    if corruptions and len(severities) == 1:
        results.update(severity=severities[0], seed=seed, corruptions={})
    elif corruptions:
        results.update(severities=severities, seed=seed, corruptions={})
    for name in corruptions:
        by_severity = {}
        for level in severities:
            corrupted = _corrupted(dataset, example_transform, data_args, name, level, seed)
            by_severity[str(level)] = _metrics(predictor, corrupted, metrics, batch_size)
        # One severity keeps the file's first format: the scores directly under the corruption's name.
        results["corruptions"][name] = by_severity if len(severities) > 1 else by_severity[str(severities[0])]

    write_json(output_file, results)
    logger.info(f"Wrote {output_file}")
    if plot_file is not None:
        curves = {
            name: {int(level): scores["accuracy"] for level, scores in by_severity.items()}
            for name, by_severity in results["corruptions"].items()
        }
        # Beside the JSON, under its name: robustness_<split>.png for the default file.
        plot = plot_robustness(clean["accuracy"], curves, plot_file)
        logger.info(f"Wrote {plot}")
    return results


def _scored_file(predictor: Predictor, model_dir: str, onnx_file: str | None) -> str:
    """The file whose model was scored, relative to `model_dir`: `onnx/model_quantized.onnx`, `model.safetensors`."""
    if isinstance(predictor, OnnxClassifier):
        return f"{ONNX_FOLDER}/{Path(onnx_file or ONNX_MODEL).name}"
    folder = Path(model_dir)
    if (folder / ADAPTER_CONFIG).is_file():
        return ADAPTER_WEIGHTS
    return MODEL_WEIGHTS if (folder / MODEL_WEIGHTS).is_file() else MODEL_WEIGHTS_INDEX


# The recipe fields that say which data a run read: evaluate carves the run's validation split only from that data.
_DATA_IDENTITY_FIELDS = (
    "dataset_name",
    "dataset_config_name",
    "train_dir",
    "validation_dir",
    "image_column_name",
    "label_column_name",
)


def load_split(model_dir: str, data_args: DataArguments, split: str) -> tuple[DatasetDict, list[str], dict | None]:
    """
    The data, its label names and, for a train or validation split carved from the data's train split, the run's
    carving (`train_val_split`, `seed` and the sample caps, read from the run's recipe). Without a validation split of
    its own the data's train and validation splits are carved as the run carved them, or not at all: scores on
    another carving would count the run's training images as validation ones.
    """
    # The few-shot subset is the run's (its K and seed, see `_few_shot`), only ever on the train split.
    data_args = replace(data_args, train_samples_per_class=None) if split != "train" else data_args
    if split not in ("train", "validation"):
        return (*load_image_datasets(data_args), None)
    own = replace(data_args, train_val_split=0, train_samples_per_class=None)
    data, label_names = load_image_datasets(own)
    # train_val_split 0 asks for the data's own splits only.
    if "validation" in data or "train" not in data or data_args.train_val_split == 0:
        if split not in data:
            raise ValueError(f"split={split!r} is not in the data, which has {', '.join(data)}: choose one of those.")
        few_shot = _few_shot(model_dir, data_args) if split == "train" else {}
        if not few_shot:
            return data, label_names, None
        subset = replace(own, train_samples_per_class=few_shot["train_samples_per_class"])
        data, label_names = load_image_datasets(subset, few_shot["seed"])
        return data, label_names, few_shot
    recipe = _run_recipe(model_dir, split)
    different = [name for name in _DATA_IDENTITY_FIELDS if not _same(recipe.get(name), getattr(data_args, name))]
    if different:
        shown = ", ".join(
            f"{name}={getattr(data_args, name)!r} (the run's: {recipe.get(name)!r})" for name in different
        )
        raise ValueError(
            f"Cannot know the run's {split} split: the data has no validation split of its own, and it "
            f"is not the data of the run in {model_dir} ({shown}). Evaluate on --split test, or give the "
            "run's data."
        )
    share, seed = recipe.get("train_val_split"), recipe.get("seed")
    if not share:
        raise ValueError(
            f"The run in {model_dir} carved no validation split (its {RECIPE} has train_val_split "
            f"{share!r}): evaluate on --split test."
        )
    # The caps, unless given here: the run trained and validated on the first that many of its splits.
    caps = {
        name: getattr(data_args, name) if getattr(data_args, name) is not None else recipe.get(name)
        for name in ("max_train_samples", "max_eval_samples")
    }
    few_shot = _few_shot(model_dir, data_args) if split == "train" else {}
    if few_shot:
        caps["train_samples_per_class"] = few_shot["train_samples_per_class"]
    data, label_names = load_image_datasets(replace(data_args, train_val_split=share, **caps), seed)
    logger.info(f"{split} carved from train as the run did: train_val_split {share}, seed {seed} ({RECIPE}).")
    return data, label_names, {"train_val_split": share, "seed": seed, **caps}


def _few_shot(model_dir: str, data_args: DataArguments) -> dict:
    """
    The few-shot subset a run trained on, `{"train_samples_per_class": K, "seed": seed}` (K as given here, else the
    run's recipe's; the seed always the run's), or {} for a run on every training image.
    """
    path = Path(model_dir) / RECIPE
    if not path.is_file():
        if data_args.train_samples_per_class is not None:
            raise ValueError(
                f"train_samples_per_class={data_args.train_samples_per_class}: cannot know which images "
                f"the run drew, as {model_dir} has no {RECIPE} that records its seed. Evaluate on "
                f"--split test, or copy the run's {RECIPE} into {model_dir}."
            )
        return {}
    recipe = _run_recipe(model_dir, "train")
    k = data_args.train_samples_per_class or recipe.get("train_samples_per_class")
    return {"train_samples_per_class": k, "seed": recipe.get("seed")} if k else {}


def _run_recipe(model_dir: str, split: str) -> dict:
    """The resolved recipe of the run that wrote `model_dir`; a one-line error naming `split` when it has none."""
    path = Path(model_dir) / RECIPE
    if not path.is_file():
        raise ValueError(
            f"Cannot know the run's {split} split: the data has no validation split of its own, so the "
            f"run carved it from train, and {model_dir} has no {RECIPE} that records how. Evaluate on "
            f"--split test, or copy the run's {RECIPE} into {model_dir}."
        )
    recipe = read_yaml(path)
    if not isinstance(recipe, dict):
        raise DamagedFileError(f"{path} does not hold a recipe's fields. {RESTORE_ADVICE}")
    return recipe


def _same(recorded, given) -> bool:
    """Whether a recipe value and the value given here name the same thing (folders compared as real paths)."""
    if recorded == given:
        return True
    both_text = isinstance(recorded, str) and isinstance(given, str)
    return both_text and os.path.realpath(recorded) == os.path.realpath(given)


def _corrupted(
    dataset: Dataset, transform: ExampleTransform, data_args: DataArguments, name: str, severity: int, seed: int
) -> Dataset:
    """`dataset` under corruption `name`, on top of the data's own corruptions when it has some."""
    # The data's own corruptions come first; one on top of them draws its noise apart from theirs (another stream).
    stream = 1 if data_args.image_corruptions else 0
    on_top = corrupted_transform(transform, name, severity, seed, stream)
    return with_corruption(dataset, on_top, *data_args.corruption)


def _metrics(predictor: Predictor, dataset: Dataset, metrics: ClassificationMetrics, batch_size: int) -> dict:
    """
    The model's loss and `metrics` on `dataset`, and the count of images left out as undecodable (`skipped_images`).
    The loss is computed as the Trainer computes `eval_loss`, so that the clean scores repeat the `test_*` numbers of
    a training run: every batch's mean loss counts once per image the batch read, undecodable ones included (the
    mean over images when none was skipped).
    """
    batch_losses, batch_sizes, logits, labels, skipped = [], [], [], [], 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_images):
        batch_skipped = int(batch.pop(SKIPPED_IMAGES))
        skipped += batch_skipped
        batch_sizes.append(len(batch["labels"]) + batch_skipped)
        batch_logits = predictor.logits(batch["pixel_values"])  # (batch, num_labels); a distilled model's head average
        # The model's own loss for class ids (classification_loss), computed here for an export too.
        batch_losses.append(torch.nn.functional.cross_entropy(batch_logits, batch["labels"]))
        logits.append(batch_logits)
        labels.append(batch["labels"])
    # In float32, as the Trainer averages its gathered losses.
    loss = np.repeat(torch.stack(batch_losses).numpy(), batch_sizes).mean().item()
    scores = metrics(EvalPrediction(predictions=torch.cat(logits).numpy(), label_ids=torch.cat(labels).numpy()))
    return {"loss": loss, **scores, "skipped_images": skipped}
