"""`vit-ft evaluate`: a saved model's metrics on a data split, clean and under image corruptions."""

import logging
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import EvalPrediction

from ..checkpoints.loading import check_labels
from ..data.arguments import DataArguments
from ..data.corruptions import CorruptedExampleTransform, check_corruption, with_corruption, with_data_corruptions
from ..data.datasets import load_image_datasets
from ..data.transforms import SKIPPED_IMAGES, ExampleTransform, build_eval_transform, collate_images
from ..output_dir import eval_file, robustness_file, write_json
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
) -> dict:
    """
    Evaluates the vit_ft model (or LoRA adapter, on `base_model` or the base it names, or `vit-ft export` folder, run
    in ONNX Runtime from its `onnx_file`: see `load_predictor`) in `model_dir` on `split` of
    the data `data_args` names (its `image_corruptions` included), clean and then under each of `corruptions` (see
    `vit_ft.corruptions`) at `severity` (one, or a list of several), their noise seeded from `seed`. Writes the results
    as JSON to `output_file` (default `model_dir/robustness_<split>.json` with corruptions, else
    `model_dir/eval_<split>.json`) and returns them. With several severities, each corruption's scores are keyed by
    severity, and a plot of accuracy against severity goes beside the JSON (`robustness_<split>.png`).
    """
    corruptions = list(corruptions or [])
    severities = [severity] if isinstance(severity, int) else list(severity)
    for name in corruptions:
        for level in severities:
            check_corruption(name, level)
    predictor = load_predictor(model_dir, base_model, onnx_file)
    data, label_names = load_image_datasets(data_args)
    if split not in data:
        raise ValueError(f"split={split!r} is not in the data, which has {', '.join(data)}: choose one of those.")
    advice = "Evaluate on data with the model's classes in the same order, or fine-tune on this data."
    check_labels(predictor.id2label, label_names, "model", model_dir, advice)

    dataset = data[split]
    example_transform = ExampleTransform(build_eval_transform(predictor.preprocessing), strict=data_args.strict_images)
    metrics = ClassificationMetrics(len(label_names))
    clean = _metrics(predictor, with_data_corruptions(dataset, example_transform, data_args), metrics, batch_size)
    # The images scored: those that could not be decoded are left out of every block alike.
    results = {"model": str(model_dir), "split": split, "examples": len(dataset) - clean["skipped_images"],
               "skipped_images": clean["skipped_images"]}  # fmt: skip
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

    default_name = robustness_file(split) if corruptions else eval_file(split)
    output_file = write_json(output_file or Path(model_dir) / default_name, results)
    logger.info(f"Wrote {output_file}")
    if corruptions and len(severities) > 1:
        curves = {name: {int(level): scores["accuracy"] for level, scores in by_severity.items()}
                  for name, by_severity in results["corruptions"].items()}  # fmt: skip
        # Beside the JSON, under its name: robustness_<split>.png for the default file.
        plot = plot_robustness(clean["accuracy"], curves, output_file.with_suffix(".png"))
        logger.info(f"Wrote {plot}")
    return results


def _corrupted(
    dataset: Dataset, transform: ExampleTransform, data_args: DataArguments, name: str, severity: int, seed: int
) -> Dataset:
    """`dataset` under corruption `name`, on top of the data's own corruptions when it has some."""
    if data_args.image_corruptions:
        # On top of the data's own corruptions, with noise drawn apart from theirs (another seed stream).
        on_top = CorruptedExampleTransform(transform, name, severity, seed, stream=1)
        return with_data_corruptions(dataset, on_top, data_args)
    return with_corruption(dataset, transform, name, severity, seed)


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
