"""The model card (README.md) of a vit-ft output directory: Hub metadata, how it was trained, results, usage, plots.

The card is written from the record of the files a run leaves (`vit_ft.output_dir.read_run`), so `vit-ft push` can
write it long after training, and `push_to_hub: true` writes the same card at the end of a run. This module decides
what the card shows; the Jinja2 template `templates/model_card.md.j2`, which huggingface_hub's
`ModelCard.from_template` renders, decides how it reads.
"""

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jinja2
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..output_dir import (
    ADAPTER_CONFIG,
    ADAPTER_RECORD,
    ALL_RESULTS,
    ATTENTION_MAPS,
    CARD,
    CONFUSION_MATRIX,
    MODEL_CONFIG,
    MODELING_CODE,
    ONNX_FOLDER,
    ONNX_QUANTIZED_MODEL,
    PROCESSOR_CONFIG,
    RECIPE,
    RECONSTRUCTIONS,
    TRAINING_CURVES,
    RobustnessReport,
    RunRecord,
    SplitMetrics,
    TrainingFacts,
    read_run,
    write_text,
)
from .arguments import is_repo_id

if TYPE_CHECKING:  # importing the Trainer takes a while; `import vit_ft` should not wait for it
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CARD_TEMPLATE = TEMPLATES / "model_card.md.j2"  # the card's layout; this module decides what it shows
TRANSFORMERS_JS_TEMPLATE = TEMPLATES / "transformers_js_usage.mjs.j2"

# vit_ft.data.readers.BUILT_IN_DATASETS' names (hub sits beside data, not above it), with a readable name each.
BUILT_IN_DATASETS = {"digits": "scikit-learn digits (8x8)", "lfw_faces": "scikit-image LFW faces subset (25x25)"}
# The recipe fields a reader needs to judge a run; the whole recipe is in the repo next to the card.
KEY_HYPERPARAMETERS = (
    "preset",
    "model_name_or_path",
    "model_overrides",
    "freeze_backbone",
    "dataset_name",
    "dataset_config_name",
    "train_dir",
    "max_train_samples",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "layer_decay",
    "label_smoothing_factor",
    "mixup_alpha",
    "cutmix_alpha",
    "auto_augment",
    "random_erasing",
    "random_resized_crop_min_scale",
    "horizontal_flip",
    "ema_decay",
    "bf16",
    "fp16",
    "seed",
)
# The fields of LoRA, distillation and low-quality data, shown when the field that turns the method on is set: a
# resolved recipe holds every field, at its default when the method is off.
METHOD_HYPERPARAMETERS = {
    "peft_method": (
        "peft_method",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target",
        "lora_bias",
        "use_dora",
        "use_rslora",
    ),
    "teacher_model_name_or_path": (
        "teacher_model_name_or_path",
        "distillation_type",
        "distillation_alpha",
        "distillation_temperature",
        "teacher_dtype",
        "teacher_label_matching",
        "student_from_teacher",
        "student_layers",
    ),
    "image_corruptions": ("image_corruptions", "corruption_severity", "corruption_seed"),
    "mask_ratio": (
        "mask_ratio",
        "decoder_hidden_size",
        "decoder_num_hidden_layers",
        "decoder_num_attention_heads",
        "decoder_intermediate_size",
        "norm_pix_loss",
        "validation_share",
    ),
}
_PLOTS = {
    TRAINING_CURVES: "Training curves",
    CONFUSION_MATRIX: "Confusion matrix (test split)",
    ATTENTION_MAPS: "Attention maps (test split)",
    RECONSTRUCTIONS: "Reconstructions (held-out images: original, masked, rebuilt)",
}


@dataclass(frozen=True)
class CardRecipe:
    """
    The recipe fields the card reads beyond its hyperparameter table, typed: each is the field of that name of an
    argument group (tests/hub/test_card.py checks them all, with KEY_HYPERPARAMETERS and METHOD_HYPERPARAMETERS). A
    recipe from an older run may lack a field, which then keeps its default here.
    """

    preset: str | None = None
    dataset_name: str | None = None
    dataset_config_name: str | None = None
    train_dir: str | None = None
    test_dir: str | None = None
    teacher_model_name_or_path: str | None = None
    distillation_type: str | None = None
    student_from_teacher: bool = False
    student_layers: str | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    license: str | None = None

    @classmethod
    def from_recipe(cls, recipe: dict) -> "CardRecipe":
        return cls(**{item.name: recipe[item.name] for item in fields(cls) if item.name in recipe})


# config.json's `architectures` of a `vit-ft pretrain` output: an encoder (with its MAE decoder), not a classifier.
MASKED_AUTOENCODER = "ViTForMaskedAutoencoding"
LABELS_SHOWN = 20  # the first classes the summary names; config.json has them all
# The files the card points a reader to, by their names in `vit_ft.output_dir`.
_FILES = {
    "recipe": RECIPE,
    "all_results": ALL_RESULTS,
    "model_config": MODEL_CONFIG,
    "processor_config": PROCESSOR_CONFIG,
    "modeling_code": MODELING_CODE,
    "adapter_config": ADAPTER_CONFIG,
    "adapter_record": ADAPTER_RECORD,
}


class _Metric(NamedTuple):
    """A column of the results tables and its model-index entry."""

    value: Callable[[SplitMetrics], float | None]
    hub_type: str  # the Hub's metric type
    name: str
    hub_args: dict | None


def run_environment(args: "TrainingArguments") -> dict[str, int | str]:
    """The hardware a run used, for its card: `run_training` saves it as `run_*` metrics in all_results.json."""
    if args.device.type == "cuda":
        hardware = torch.cuda.get_device_name(args.device)
    else:
        hardware = f"{args.device.type.upper()} ({os.cpu_count()} cores)"
    return TrainingFacts(processes=args.world_size, hardware=hardware).as_results()


def write_model_card(
    model_dir: str | Path, repo_id: str, license: str | None = None, space_id: str | None = None
) -> Path:
    """Writes the card of `model_dir` (see `build_model_card`) to `model_dir/README.md`, replacing any there."""
    return write_text(Path(model_dir) / CARD, str(build_model_card(model_dir, repo_id, license, space_id)))


def build_model_card(
    model_dir: str | Path, repo_id: str, license: str | None = None, space_id: str | None = None
) -> ModelCard:
    """
    The card of the model or LoRA adapter in `model_dir`, to be pushed to `repo_id`. `license` (a Hub license id,
    e.g. `apache-2.0`) defaults to the recipe's `license`; with neither, the card states none rather than guess.
    `space_id`, the Space of the model's demo (`vit-ft push --with_demo`), is linked from the card.
    Building it parses the metadata back with huggingface_hub's `ModelCardData`, offline: metadata the Hub would
    refuse (a malformed `model-index`) raises here, before anything is uploaded.
    """
    run = read_run(model_dir)
    if run.adapter is not None and run.adapter.get("peft_type") != "LORA":
        raise ValueError(
            f"{model_dir}/{ADAPTER_CONFIG} holds a {run.adapter.get('peft_type')} adapter: vit-ft writes "
            "cards for LoRA adapters only."
        )
    recipe = CardRecipe.from_recipe(run.recipe)
    license = license or recipe.license
    if not license:
        logger.warning(
            f"{model_dir}: no license given, so the card states none. Set `license` in the recipe or "
            "pass --license (a Hub license id, e.g. apache-2.0)."
        )
    if run.adapter is not None and _hub_id(run.base_model) is None:
        logger.warning(
            f"{model_dir}: the adapter's base model, {run.base_model!r}, is not a Hub id, so loading the "
            "adapter from the Hub needs the base given by hand (the card says so). Push the base model "
            "too, and train the adapter from its Hub id, for an adapter that loads by itself."
        )
    name = repo_id.split("/")[-1]
    metadata = _metadata(run, recipe, name, license)
    variables = {**_template_variables(run, recipe, repo_id, name), "space": space_id}
    return ModelCard.from_template(metadata, template_path=str(CARD_TEMPLATE), **variables)


def transformers_js_usage(repo_id: str, dtype: str) -> str:
    """
    JavaScript that classifies image.png with transformers.js from the repo's ONNX file of `dtype` ("fp32", or "q8"
    for model_quantized.onnx). transformers.js picks its model class by model type and does not know "vit_ft", so the
    snippet hands it the config as "vit": its ViT classifier takes `pixel_values` and gives `logits`, as the export.
    """
    template = jinja2.Template(TRANSFORMERS_JS_TEMPLATE.read_text(encoding="utf-8"), undefined=jinja2.StrictUndefined)
    return template.render(repo_id=repo_id, dtype=dtype)


# What the template is given: each part of the card as plain values, its wording and Markdown left to the template.


class _Link(NamedTuple):
    """A model the card names: linked when it is a Hub id; a local directory means nothing on the Hub."""

    name: str
    on_hub: bool


class _Adapter(NamedTuple):
    rank: int
    alpha: int
    targets: list[str]  # module names (`q_proj`), or the one regular expression peft matches them with
    base: _Link


class _Architecture(NamedTuple):
    layers: int
    width: int
    image_size: int
    patch_size: int


class _Pretraining(NamedTuple):
    mask_ratio: str  # the share of patches hidden: "75%"
    decoder_layers: int


class _Origin(NamedTuple):
    """Where a model's training started: at most one field is set, none for a directory no run wrote."""

    teacher_layers: str | None = None  # cut from the teacher, keeping these layers
    checkpoint: _Link | None = None  # fine-tuned from it
    preset: str | None = None  # trained from scratch


class _Teacher(NamedTuple):
    model: _Link
    distillation_type: str | None


class _Labels(NamedTuple):
    count: int
    shown: list[str]  # the first LABELS_SHOWN


class _Table(NamedTuple):
    header: list[str]
    rows: list[list[str]]


class _Robustness(NamedTuple):
    """One `vit-ft evaluate --corruptions` report."""

    split: str
    examples: int
    onnx_file: str | None  # the export's file scored, when it was not the PyTorch model
    severities: tuple[int, ...]
    table: _Table
    plot: str | None


class _Onnx(NamedTuple):
    paths: list[str]  # every ONNX file of the repo: onnx/model.onnx, ...
    quantized: str | None  # the int8 file, when the repo holds it
    file: str  # the file the snippets run
    path: str  # its path in the repo
    image_size: int
    transformers_js: str


class _Facts(NamedTuple):
    """How long training took, where, and how much of the model it trained."""

    duration: str
    processes: int | None
    hardware: str | None
    epochs: str | None
    batch_size: int | None  # per device x accumulation steps x processes; None without the recipe's
    per_device_batch_size: int | None
    accumulation_steps: int
    trainable_parameters: str | None
    total_parameters: str | None


class _Training(NamedTuple):
    command: str
    facts: _Facts | None
    hyperparameters: list[tuple[str, object]]


class _Plot(NamedTuple):
    title: str
    file: str


def _template_variables(run: RunRecord, recipe: CardRecipe, repo_id: str, name: str) -> dict:
    """The template's variables: what the card shows, None (or empty) for a part it leaves out."""
    kind = "adapter" if run.adapter is not None else "encoder" if _is_encoder(run) else "classifier"
    dataset = _dataset(recipe)
    return {
        "title": name,
        "repo_id": repo_id,
        "files": _FILES,
        "kind": kind,  # also picks the usage section
        "dataset": dataset[1] if dataset else None,
        "adapter": _adapter(run) if kind == "adapter" else None,
        "architecture": _architecture(run.config) if kind != "adapter" else None,
        "pretraining": _pretraining(run.config) if kind == "encoder" else None,
        "origin": _origin(run, recipe),
        "teacher": _teacher(recipe),
        "labels": _labels(run),
        "results": _results_table(run),
        "robustness": [_robustness(report) for report in run.robustness],
        "onnx": _onnx(run, repo_id),
        "training": _training(run, recipe),
        "plots": [_Plot(_PLOTS[plot], plot) for plot in run.plots],
    }


def _hub_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub repo id; None for a local directory, whose path means nothing on the Hub."""
    if not name or os.path.isabs(name) or name.startswith(".") or Path(name).exists() or not is_repo_id(name):
        return None
    return name


def _link(name: str) -> _Link:
    return _Link(name, _hub_id(name) is not None)


def _dataset(recipe: CardRecipe) -> tuple[str, str] | None:
    """The dataset's (id, readable name): a Hub id, a built-in dataset, or image folders; None without a recipe."""
    name = recipe.dataset_name
    if name in BUILT_IN_DATASETS:
        return name, BUILT_IN_DATASETS[name]
    if name:
        return name, name
    folder = recipe.train_dir or recipe.test_dir
    return ("imagefolder", f"image folder {Path(folder).name}") if folder else None


def _is_hub_dataset(dataset_id: str) -> bool:
    return dataset_id not in (*BUILT_IN_DATASETS, "imagefolder") and _hub_id(dataset_id) is not None


def _metrics(scores: Iterable[SplitMetrics]) -> list[_Metric]:
    """The metrics any of `scores` reports, in the order the card shows them."""
    scores = list(scores)
    metrics = []
    if any(score.accuracy is not None for score in scores):
        metrics.append(_Metric(lambda score: score.accuracy, "accuracy", "Accuracy", None))
    k = next((score.k for score in scores if score.top_k_accuracy is not None), None)
    if k is not None:  # min(5, classes): see ClassificationMetrics
        metrics.append(_Metric(lambda score: score.top_k_accuracy, "top_k_accuracy", f"Top-{k} accuracy", {"k": k}))
    if any(score.f1 is not None for score in scores):
        metrics.append(_Metric(lambda score: score.f1, "f1", "Macro F1", {"average": "macro"}))
    return metrics


def _eval_results(run: RunRecord, recipe: CardRecipe) -> list[EvalResult]:
    """The `model-index` entries: each split's accuracy, top-k accuracy and macro F1."""
    dataset = _dataset(recipe)
    if dataset is None:  # results without the recipe that says what data they are on
        return []
    eval_results = []
    for split, scores in run.splits.items():
        for metric in _metrics([scores]):
            eval_results.append(
                EvalResult(
                    task_type="image-classification",
                    task_name="Image Classification",
                    dataset_type=dataset[0],
                    dataset_name=dataset[1],
                    dataset_config=recipe.dataset_config_name,
                    dataset_split=split,
                    metric_type=metric.hub_type,
                    metric_name=f"{metric.name} ({split})",
                    metric_args=metric.hub_args,
                    metric_value=metric.value(scores),
                )
            )
    return eval_results


def _is_encoder(run: RunRecord) -> bool:
    """Whether the run pretrained an encoder (`vit-ft pretrain`) rather than trained a classifier."""
    return MASKED_AUTOENCODER in ((run.config or {}).get("architectures") or [])


def _metadata(run: RunRecord, recipe: CardRecipe, name: str, license: str | None) -> ModelCardData:
    dataset = _dataset(recipe)
    encoder = _is_encoder(run)
    tags = ["vit_ft", "image-feature-extraction" if encoder else "image-classification", "vision"]
    if encoder:
        tags += ["mae", "self-supervised"]
    if run.adapter is not None:
        tags += ["peft", "lora"]
    if recipe.teacher_model_name_or_path:
        tags.append("distillation")
    eval_results = _eval_results(run, recipe)
    return ModelCardData(
        library_name="peft" if run.adapter is not None else "transformers",
        license=license,
        tags=tags,
        datasets=[dataset[0]] if dataset and _is_hub_dataset(dataset[0]) else None,
        metrics=sorted({metric.hub_type for metric in _metrics(run.splits.values())}) or None,
        base_model=_hub_id(run.base_model),
        pipeline_tag="image-feature-extraction" if encoder else "image-classification",
        model_name=name if eval_results else None,  # the model-index's name
        eval_results=eval_results or None,
    )


def _adapter(run: RunRecord) -> _Adapter:
    targets = run.adapter["target_modules"]
    # peft's target modules, `vit.layers.0.attention.q_proj`, ..., named once each: `q_proj`; or a regular expression.
    names = [targets] if isinstance(targets, str) else sorted({target.split(".")[-1] for target in targets})
    # The base as peft recorded it; a directory of the machine the adapter was trained on is no Hub id.
    return _Adapter(run.adapter["r"], run.adapter["lora_alpha"], names, _link(run.base_model or "(not recorded)"))


def _architecture(config: dict) -> _Architecture:
    layers, width = config["num_hidden_layers"], config["hidden_size"]
    return _Architecture(layers, width, config["image_size"], config["patch_size"])


def _pretraining(config: dict) -> _Pretraining:
    return _Pretraining(f"{config['mask_ratio']:.0%}", config["decoder_num_hidden_layers"])


def _origin(run: RunRecord, recipe: CardRecipe) -> _Origin:
    """Where training started, from the recipe; nothing for a directory without one (from `vit-ft convert`)."""
    if recipe.student_from_teacher:
        return _Origin(teacher_layers=recipe.student_layers)
    if run.base_model:
        return _Origin(checkpoint=_link(run.base_model))
    return _Origin(preset=recipe.preset)


def _teacher(recipe: CardRecipe) -> _Teacher | None:
    if not recipe.teacher_model_name_or_path:
        return None
    return _Teacher(_link(recipe.teacher_model_name_or_path), recipe.distillation_type)


def _labels(run: RunRecord) -> _Labels:
    labels = [run.id2label[key] for key in sorted(run.id2label, key=int)]
    return _Labels(len(labels), labels[:LABELS_SHOWN])


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _results_table(run: RunRecord) -> _Table | None:
    if not run.splits:
        return None
    metrics = _metrics(run.splits.values())
    header = ["split", *(metric.name for metric in metrics), "loss"]
    rows = [
        [split, *(_number(metric.value(scores)) for metric in metrics), _number(scores.loss)]
        for split, scores in run.splits.items()
    ]
    return _Table(header, rows)


def _robustness(report: RobustnessReport) -> _Robustness:
    """
    A `vit-ft evaluate --corruptions` file: for one severity, the scores under each corruption against the clean
    ones; for several, the accuracy at each severity, and the file's plot of it.
    """
    onnx_file = report.model_file if report.model_file and report.model_file.endswith(".onnx") else None
    table = _one_severity_table(report) if len(report.severities) == 1 else _severities_table(report)
    return _Robustness(report.split, report.examples, onnx_file, report.severities, table, report.plot)


def _one_severity_table(report: RobustnessReport) -> _Table:
    clean = report.clean
    metrics = _metrics([clean])
    header = ["corruption", *(metric.name for metric in metrics), "accuracy change"]
    rows = [["none (clean)", *(_number(metric.value(clean)) for metric in metrics), ""]]
    for corruption, by_severity in report.corruptions.items():
        scores = by_severity[report.severities[0]]
        change = scores.accuracy - clean.accuracy
        rows.append([corruption, *(_number(metric.value(scores)) for metric in metrics), f"{change:+.4f}"])
    return _Table(header, rows)


def _severities_table(report: RobustnessReport) -> _Table:
    header = ["corruption", "clean", *(f"severity {severity}" for severity in report.severities)]
    rows = [
        [
            corruption,
            _number(report.clean.accuracy),
            *(_number(by_severity[severity].accuracy) for severity in report.severities),
        ]
        for corruption, by_severity in report.corruptions.items()
    ]
    return _Table(header, rows)


def _onnx(run: RunRecord, repo_id: str) -> _Onnx | None:
    """How to run the repo's onnx/ models (`vit-ft export`, `vit-ft push --with_onnx`), without PyTorch."""
    if not run.onnx_models:
        return None
    quantized = ONNX_QUANTIZED_MODEL if ONNX_QUANTIZED_MODEL in run.onnx_models else None
    file = quantized or run.onnx_models[0]
    dtype = "q8" if quantized else "fp32"  # transformers.js's name of each file
    return _Onnx(
        paths=[f"{ONNX_FOLDER}/{name}" for name in run.onnx_models],
        quantized=quantized,
        file=file,
        path=f"{ONNX_FOLDER}/{file}",
        image_size=run.config["image_size"],
        transformers_js=transformers_js_usage(repo_id, dtype),
    )


def _training(run: RunRecord, recipe: CardRecipe) -> _Training | None:
    if not run.recipe:
        return None
    command = "vit-ft pretrain" if _is_encoder(run) else "vit-ft train"
    facts = _facts(run.training, recipe) if run.training is not None else None
    return _Training(command, facts, _hyperparameters(run.recipe))


def _hyperparameters(recipe: dict) -> list[tuple[str, object]]:
    """The key fields of the recipe, then those of each method the run used."""
    names = [name for name in KEY_HYPERPARAMETERS if name in recipe]
    for switch, method_fields in METHOD_HYPERPARAMETERS.items():
        names += [name for name in method_fields if recipe.get(switch) and name in recipe]
    # max_steps -1 means "train for num_train_epochs".
    return [(name, recipe[name]) for name in names if recipe[name] not in (None, -1)]


def _facts(facts: TrainingFacts, recipe: CardRecipe) -> _Facts:
    processes, per_device = facts.processes, recipe.per_device_train_batch_size
    accumulation = recipe.gradient_accumulation_steps
    batch_size = per_device * accumulation * processes if processes and per_device is not None else None
    trainable, total = facts.trainable_parameters, facts.total_parameters
    return _Facts(
        duration=_duration(facts.runtime),
        processes=processes,
        hardware=facts.hardware,
        epochs=f"{facts.epochs:g}" if facts.epochs is not None else None,
        batch_size=batch_size,
        per_device_batch_size=per_device,
        accumulation_steps=accumulation,
        trainable_parameters=f"{trainable:,}" if trainable is not None else None,
        total_parameters=f"{total:,}" if total else None,
    )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"
