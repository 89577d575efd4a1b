"""`vit-ft evaluate`: a saved model's metrics on a data split, clean and under image corruptions."""

import logging
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers import TrainingArguments

from ..checkpoints.loading import check_labels, load_model, load_processor
from ..data.arguments import DataArguments
from ..data.corruptions import CorruptedExampleTransform, check_corruption, with_corruption, with_data_corruptions
from ..data.datasets import load_image_datasets
from ..data.transforms import ExampleTransform, build_eval_transform, collate_images
from ..model.modeling_vit_ft import ViTForImageClassification
from ..output_dir import eval_file, robustness_file, write_json
from ..training.trainer import ViTTrainer
from .metrics import ClassificationMetrics, first_logits

logger = logging.getLogger(__name__)

# Timings vary from run to run; the results file holds what the model scored.
_DATA_CORRUPTION_FIELDS = ("image_corruptions", "corruption_severity", "corruption_seed")
_TIMING_METRICS = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


def evaluate_model(
    model_dir: str,
    data_args: DataArguments,
    split: str = "test",
    corruptions: list[str] | None = None,
    severity: int = 3,
    batch_size: int = 64,
    output_file: str | None = None,
    seed: int = 0,
    base_model: str | None = None,
) -> dict:
    """
    Evaluates the vit_ft model (or LoRA adapter, on `base_model` or the base it names) in `model_dir` on `split` of
    the data `data_args` names (its `image_corruptions` included), clean and then under each of `corruptions` (see
    `vit_ft.corruptions`) at `severity`, their noise seeded from `seed`. Writes the results
    as JSON to `output_file` (default `model_dir/robustness_<split>.json` with corruptions, else
    `model_dir/eval_<split>.json`) and returns them.
    """
    corruptions = list(corruptions or [])
    for name in corruptions:
        check_corruption(name, severity)
    model = load_model(model_dir, base_model, merge=True)
    processor = load_processor(model, model_dir)
    data, label_names = load_image_datasets(data_args)
    if split not in data:
        raise ValueError(f"split={split!r} is not in the data, which has {', '.join(data)}: choose one of those.")
    advice = "Evaluate on data with the model's classes in the same order, or fine-tune on this data."
    check_labels(model.config.id2label, label_names, "model", model_dir, advice)

    dataset = data[split]
    example_transform = ExampleTransform(build_eval_transform(processor), strict=data_args.strict_images)
    results = {"model": str(model_dir), "split": split, "examples": len(dataset)}
    if data_args.image_corruptions:
        # "clean" is then the low-quality data: say which.
        results["image_corruptions"] = {name: getattr(data_args, name) for name in _DATA_CORRUPTION_FIELDS}
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = _trainer(model, len(label_names), batch_size, output_dir)
        results["clean"] = _metrics(trainer, with_data_corruptions(dataset, example_transform, data_args))
        if corruptions:
            results.update(severity=severity, seed=seed, corruptions={})
        for name in corruptions:
            if data_args.image_corruptions:
                # On top of the data's own corruptions, with noise drawn apart from theirs (another seed stream).
                on_top = CorruptedExampleTransform(example_transform, name, severity, seed, stream=1)
                corrupted = with_data_corruptions(dataset, on_top, data_args)
            else:
                corrupted = with_corruption(dataset, example_transform, name, severity, seed)
            results["corruptions"][name] = _metrics(trainer, corrupted)

    default_name = robustness_file(split) if corruptions else eval_file(split)
    output_file = write_json(output_file or Path(model_dir) / default_name, results)
    logger.info(f"Wrote {output_file}")
    return results


def _trainer(model: ViTForImageClassification, num_labels: int, batch_size: int, output_dir: str) -> ViTTrainer:
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_eval_batch_size=batch_size,
        report_to="none",
        remove_unused_columns=False,  # the transforms need `image` and `label`
        use_cpu=not torch.cuda.is_available(),
    )
    # ViTTrainer, for its count of the images left out as undecodable (`skipped_images`).
    return ViTTrainer(
        model=model,
        args=args,
        data_collator=collate_images,
        compute_metrics=ClassificationMetrics(num_labels),
        preprocess_logits_for_metrics=first_logits,
    )


def _metrics(trainer: ViTTrainer, dataset: Dataset) -> dict[str, float]:
    # `predict`, unlike `evaluate`, logs nothing, so stdout stays clean for the JSON the command prints.
    metrics = trainer.predict(dataset, metric_key_prefix="eval").metrics
    metrics = {name.removeprefix("eval_"): value for name, value in metrics.items()}
    return {name: value for name, value in metrics.items() if name not in _TIMING_METRICS}
