"""The model card (README.md) of a vit-ft output directory: Hub metadata, how it was trained, results, usage, plots.

The card is written from the record of the files a run leaves (`vit_ft.output_dir.read_run`), so `vit-ft push` can
write it long after training, and `push_to_hub: true` writes the same card at the end of a run.
"""

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..output_dir import (
    ADAPTER_CONFIG,
    ADAPTER_RECORD,
    ALL_RESULTS,
    ATTENTION_MAPS,
    CARD,
    CONFUSION_MATRIX,
    MODELING_CODE,
    ONNX_FOLDER,
    ONNX_QUANTIZED_MODEL,
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

# vit_ft.data.datasets.BUILT_IN_DATASETS' names (hub sits beside data, not above it), with a readable name each.
BUILT_IN_DATASETS = {"digits": "scikit-learn digits (8x8)", "lfw_faces": "scikit-image LFW faces subset (25x25)"}
# The recipe fields a reader needs to judge a run; the whole recipe is in the repo next to the card.
KEY_HYPERPARAMETERS = (
    "preset", "model_name_or_path", "model_overrides", "freeze_backbone", "dataset_name", "dataset_config_name",
    "train_dir", "max_train_samples", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "optim",
    "layer_decay", "label_smoothing_factor", "mixup_alpha", "cutmix_alpha", "auto_augment", "random_erasing",
    "random_resized_crop_min_scale", "horizontal_flip", "ema_decay", "bf16", "fp16", "seed",
)  # fmt: skip
# The fields of LoRA, distillation and low-quality data, shown when the field that turns the method on is set: a
# resolved recipe holds every field, at its default when the method is off.
METHOD_HYPERPARAMETERS = {
    "peft_method": ("peft_method", "lora_r", "lora_alpha", "lora_dropout", "lora_target", "lora_bias", "use_dora",
                    "use_rslora"),
    "teacher_model_name_or_path": ("teacher_model_name_or_path", "distillation_type", "distillation_alpha",
                                   "distillation_temperature", "teacher_dtype", "teacher_label_matching",
                                   "student_from_teacher", "student_layers"),
    "image_corruptions": ("image_corruptions", "corruption_severity", "corruption_seed"),
    "mask_ratio": ("mask_ratio", "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
                   "decoder_intermediate_size", "norm_pix_loss", "validation_share"),
}  # fmt: skip
_PLOTS = {TRAINING_CURVES: "Training curves", CONFUSION_MATRIX: "Confusion matrix (test split)",
          ATTENTION_MAPS: "Attention maps (test split)",
          RECONSTRUCTIONS: "Reconstructions (held-out images: original, masked, rebuilt)"}


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
    student_layers: list[int] | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    license: str | None = None

    @classmethod
    def from_recipe(cls, recipe: dict) -> "CardRecipe":
        return cls(**{item.name: recipe[item.name] for item in fields(cls) if item.name in recipe})


# config.json's `architectures` of a `vit-ft pretrain` output: an encoder (with its MAE decoder), not a classifier.
MASKED_AUTOENCODER = "ViTForMaskedAutoencoding"


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


def write_model_card(model_dir: str | Path, repo_id: str, license: str | None = None) -> Path:
    """Writes the card of `model_dir` (see `build_model_card`) to `model_dir/README.md`, replacing any there."""
    return write_text(Path(model_dir) / CARD, str(build_model_card(model_dir, repo_id, license)))


def build_model_card(model_dir: str | Path, repo_id: str, license: str | None = None) -> ModelCard:
    """
    The card of the model or LoRA adapter in `model_dir`, to be pushed to `repo_id`. `license` (a Hub license id,
    e.g. `apache-2.0`) defaults to the recipe's `license`; with neither, the card states none rather than guess.
    Building it parses the metadata back with huggingface_hub's `ModelCardData`, offline: metadata the Hub would
    refuse (a malformed `model-index`) raises here, before anything is uploaded.
    """
    run = read_run(model_dir)
    if run.adapter is not None and run.adapter.get("peft_type") != "LORA":
        raise ValueError(f"{model_dir}/{ADAPTER_CONFIG} holds a {run.adapter.get('peft_type')} adapter: vit-ft writes "
                         "cards for LoRA adapters only.")  # fmt: skip
    license = license or _recipe(run).license
    if not license:
        logger.warning(f"{model_dir}: no license given, so the card states none. Set `license` in the recipe or "
                       "pass --license (a Hub license id, e.g. apache-2.0).")  # fmt: skip
    if run.adapter is not None and _hub_id(run.base_model) is None:
        logger.warning(f"{model_dir}: the adapter's base model, {run.base_model!r}, is not a Hub id, so loading the "
                       "adapter from the Hub needs the base given by hand (the card says so). Push the base model "
                       "too, and train the adapter from its Hub id, for an adapter that loads by itself.")  # fmt: skip
    name = repo_id.split("/")[-1]
    metadata = _metadata(run, name, license)
    sections = (
        f"# {name}",
        _summary(run),
        _results_section(run),
        _robustness_section(run),
        _usage_section(run, repo_id),
        _onnx_section(run, repo_id),
        _training_section(run),
        *(f"## {_PLOTS[plot]}\n\n![{_PLOTS[plot].lower()}]({plot})" for plot in run.plots),
    )
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}\n")


def _hub_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub repo id; None for a local directory, whose path means nothing on the Hub."""
    if not name or os.path.isabs(name) or name.startswith(".") or Path(name).exists() or not is_repo_id(name):
        return None
    return name


def _hub_link(name: str) -> str:
    return f"[{name}](https://huggingface.co/{name})" if _hub_id(name) else f"`{name}`"


def _recipe(run: RunRecord) -> CardRecipe:
    return CardRecipe.from_recipe(run.recipe)


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


def _eval_results(run: RunRecord) -> list[EvalResult]:
    """The `model-index` entries: each split's accuracy, top-k accuracy and macro F1."""
    dataset = _dataset(_recipe(run))
    if dataset is None:  # results without the recipe that says what data they are on
        return []
    eval_results = []
    for split, scores in run.splits.items():
        for metric in _metrics([scores]):
            eval_results.append(EvalResult(
                task_type="image-classification", task_name="Image Classification", dataset_type=dataset[0],
                dataset_name=dataset[1], dataset_config=_recipe(run).dataset_config_name, dataset_split=split,
                metric_type=metric.hub_type, metric_name=f"{metric.name} ({split})", metric_args=metric.hub_args,
                metric_value=metric.value(scores),
            ))  # fmt: skip
    return eval_results


def _is_encoder(run: RunRecord) -> bool:
    """Whether the run pretrained an encoder (`vit-ft pretrain`) rather than trained a classifier."""
    return MASKED_AUTOENCODER in ((run.config or {}).get("architectures") or [])


def _metadata(run: RunRecord, name: str, license: str | None) -> ModelCardData:
    dataset = _dataset(_recipe(run))
    encoder = _is_encoder(run)
    tags = ["vit_ft", "image-feature-extraction" if encoder else "image-classification", "vision"]
    if encoder:
        tags += ["mae", "self-supervised"]
    if run.adapter is not None:
        tags += ["peft", "lora"]
    if _recipe(run).teacher_model_name_or_path:
        tags.append("distillation")
    eval_results = _eval_results(run)
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


def _summary(run: RunRecord) -> str:
    dataset = _dataset(_recipe(run))
    trained_on = f" on {dataset[1]}" if dataset else ""
    if run.adapter is not None:
        target = _module_names(run.adapter["target_modules"])
        base = run.base_model or "(not recorded)"
        lines = [
            f"A LoRA adapter (rank {run.adapter['r']}, alpha {run.adapter['lora_alpha']}, on {target}) and classifier "
            f"head for the Vision Transformer {_hub_link(base)}, trained{trained_on} with vit-ft. This repo "
            "holds the adapter only: it loads on top of the base model (see Usage)."
        ]
        if not _hub_id(base):
            lines.append(f"The base model was a local directory when the adapter was trained ({base}): give its Hub "
                         "id or path as `base_model` when loading.")  # fmt: skip
    elif _is_encoder(run):
        architecture = _architecture(run.config)
        lines = [f"A vit-ft Vision Transformer encoder ({architecture}) pretrained by masked autoencoding (MAE, He et "
                 f"al. 2022: {run.config['mask_ratio']:.0%} of the patches hidden, the rest reconstructed by a "
                 f"{run.config['decoder_num_hidden_layers']}-block decoder){_origin(run)}{trained_on}, without "
                 "labels. It is a starting point to fine-tune (`vit-ft train` with `model_name_or_path`, which drops "
                 "the decoder) or to read image features from."]  # fmt: skip
    else:
        architecture = _architecture(run.config)
        lines = [f"A vit-ft Vision Transformer image classifier ({architecture}){_origin(run)}{trained_on}."]
    teacher = _recipe(run).teacher_model_name_or_path
    if teacher:
        kind = _recipe(run).distillation_type
        lines.append(f"It is a student distilled from the teacher {_hub_link(teacher)} with {kind or 'the'} "
                     "distillation of DeiT (Touvron et al. 2021): it learned from the teacher's predictions as "
                     "well as from the labels.")  # fmt: skip
    labels = [run.id2label[key] for key in sorted(run.id2label, key=int)]
    if labels:
        shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
        lines.append(f"{len(labels)} classes: {shown}.")
    return "\n\n".join(lines)


def _origin(run: RunRecord) -> str:
    """Where training started, from the recipe; nothing for a directory without one (from `vit-ft convert`)."""
    if _recipe(run).student_from_teacher:
        return f", cut from the teacher (its layers {_recipe(run).student_layers}) and trained"
    if run.base_model:
        return f", fine-tuned from {_hub_link(run.base_model)}"
    if _recipe(run).preset:
        return f", trained from scratch (`{_recipe(run).preset}`)"
    return ""


def _module_names(targets: list[str] | str) -> str:
    """peft's target modules, `vit.layers.0.attention.q_proj`, ... named once each: `q_proj`."""
    if isinstance(targets, str):  # a regular expression
        return f"`{targets}`"
    return ", ".join(f"`{name}`" for name in sorted({target.split(".")[-1] for target in targets}))


def _architecture(config: dict) -> str:
    return (f"ViT, {config['num_hidden_layers']} layers of width {config['hidden_size']}, "
            f"{config['image_size']}x{config['image_size']} images in {config['patch_size']}x{config['patch_size']} "
            "patches")  # fmt: skip


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _results_section(run: RunRecord) -> str | None:
    if not run.splits:
        return None
    metrics = _metrics(run.splits.values())
    header = ["split", *(metric.name for metric in metrics), "loss"]
    rows = [[split, *(_number(metric.value(scores)) for metric in metrics), _number(scores.loss)]
            for split, scores in run.splits.items()]  # fmt: skip
    return "## Results\n\n" + _table(header, rows)


def _robustness_section(run: RunRecord) -> str | None:
    """
    One table per `vit-ft evaluate --corruptions` file: for one severity, the scores under each corruption against
    the clean ones; for several, the accuracy at each severity, and the file's plot of it.
    """
    parts = []
    for report in run.robustness:
        where = f"Split `{report.split}` ({report.examples} images)"
        if report.model_file and report.model_file.endswith(".onnx"):
            where += f", scored with `{report.model_file}`"  # an export's model, not the PyTorch weights
        if len(report.severities) == 1:
            parts.append(f"{where}, corruption severity {report.severities[0]} of 5, from `vit-ft evaluate "
                         f"--corruptions`:\n\n{_one_severity_table(report)}")  # fmt: skip
        else:
            parts.append(f"{where}, accuracy at corruption severities {', '.join(map(str, report.severities))} of "
                         f"5, from `vit-ft evaluate --corruptions`:\n\n{_severities_table(report)}")  # fmt: skip
        if report.plot:
            parts.append(f"![accuracy against corruption severity]({report.plot})")
    return "## Robustness to image corruptions\n\n" + "\n\n".join(parts) if parts else None


def _one_severity_table(report: RobustnessReport) -> str:
    clean = report.clean
    metrics = _metrics([clean])
    header = ["corruption", *(metric.name for metric in metrics), "accuracy change"]
    rows = [["none (clean)", *(_number(metric.value(clean)) for metric in metrics), ""]]
    for corruption, by_severity in report.corruptions.items():
        scores = by_severity[report.severities[0]]
        change = scores.accuracy - clean.accuracy
        rows.append([corruption, *(_number(metric.value(scores)) for metric in metrics), f"{change:+.4f}"])
    return _table(header, rows)


def _severities_table(report: RobustnessReport) -> str:
    header = ["corruption", "clean", *(f"severity {severity}" for severity in report.severities)]
    rows = [[corruption, _number(report.clean.accuracy),
             *(_number(by_severity[severity].accuracy) for severity in report.severities)]
            for corruption, by_severity in report.corruptions.items()]  # fmt: skip
    return _table(header, rows)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _training_section(run: RunRecord) -> str | None:
    if not run.recipe:
        return None
    command = "vit-ft pretrain" if _is_encoder(run) else "vit-ft train"
    lines = ["## Training", f"Trained with `{command}`; every setting of the run is in [{RECIPE}]({RECIPE}), and "
             f"the metrics in [{ALL_RESULTS}]({ALL_RESULTS})."]  # fmt: skip
    if run.training is not None:
        lines.append(_hardware_line(run.training, _recipe(run)))
    keys = [key for key in KEY_HYPERPARAMETERS if key in run.recipe]
    for switch, method_fields in METHOD_HYPERPARAMETERS.items():
        keys += [key for key in method_fields if run.recipe.get(switch) and key in run.recipe]
    # max_steps -1 means "train for num_train_epochs".
    rows = [[key, f"`{run.recipe[key]}`"] for key in keys if run.recipe[key] not in (None, -1)]
    lines.append(_table(["hyperparameter", "value"], rows))
    return "\n\n".join(lines)


def _hardware_line(facts: TrainingFacts, recipe: CardRecipe) -> str:
    processes = facts.processes
    where = f" on {processes} process{'es' if processes != 1 else ''}, {facts.hardware}" if processes else ""
    line = f"Training took {_duration(facts.runtime)}{where}"
    if facts.epochs is not None:
        line += f", {facts.epochs:g} epochs"
    if processes and recipe.per_device_train_batch_size is not None:
        per_device, accumulation = recipe.per_device_train_batch_size, recipe.gradient_accumulation_steps
        line += (f"; batch size {per_device * accumulation * processes} (per device {per_device}, accumulation "
                 f"steps {accumulation}, processes {processes})")  # fmt: skip
    trainable, total = facts.trainable_parameters, facts.total_parameters
    if trainable is not None:
        line += f"; {trainable:,} trainable parameters" + (f" of {total:,}" if total else "")
    return line + "."


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _usage_section(run: RunRecord, repo_id: str) -> str:
    if run.adapter is not None:
        return _adapter_usage(run, repo_id)
    if _is_encoder(run):
        return _encoder_usage(repo_id)
    return f"""## Usage

With vit-ft installed, its own classes load the model, and no code from the repo runs:

```python
import vit_ft  # registers vit_ft with transformers' Auto classes
from transformers import AutoModel, AutoModelForImageClassification, pipeline

classifier = pipeline("image-classification", model="{repo_id}")
predictions = classifier("image.png", top_k=5)
model = AutoModelForImageClassification.from_pretrained("{repo_id}")
encoder = AutoModel.from_pretrained("{repo_id}")  # the ViT without its head, for image features
```

Without vit-ft, transformers runs the modeling code this repo holds (`{MODELING_CODE}`), so it must be trusted:

```python
from transformers import AutoModel, AutoModelForImageClassification, pipeline

classifier = pipeline("image-classification", model="{repo_id}", trust_remote_code=True)
predictions = classifier("image.png", top_k=5)
model = AutoModelForImageClassification.from_pretrained("{repo_id}", trust_remote_code=True)
encoder = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
```"""


def _onnx_section(run: RunRecord, repo_id: str) -> str | None:
    """How to run the repo's onnx/ models (`vit-ft export`, `vit-ft push --with_onnx`), without PyTorch."""
    if not run.onnx_models:
        return None
    files = ", ".join(f"`{ONNX_FOLDER}/{name}`" for name in run.onnx_models)
    file = ONNX_QUANTIZED_MODEL if ONNX_QUANTIZED_MODEL in run.onnx_models else run.onnx_models[0]
    dtype = "q8" if file == ONNX_QUANTIZED_MODEL else "fp32"  # transformers.js's name of each file
    return f"""## ONNX

This repo also holds the model in ONNX ({files}; `model_quantized.onnx` has int8 weights), for ONNX Runtime and
transformers.js, without PyTorch. Its input is `pixel_values` (batch, 3, {run.config['image_size']},
{run.config['image_size']}), preprocessed as `preprocessor_config.json` says; its output is `logits`.

With vit-ft, whose `predict` and `evaluate` commands run an export too:

```python
from huggingface_hub import snapshot_download
from vit_ft import load_predictor

predictor = load_predictor(snapshot_download("{repo_id}"), onnx_file="{file}")  # ONNX Runtime, no model code
```

With ONNX Runtime alone:

```python
import json

import numpy as np
import onnxruntime
from huggingface_hub import hf_hub_download
from PIL import Image

with open(hf_hub_download("{repo_id}", "preprocessor_config.json")) as file:
    processor = json.load(file)
with open(hf_hub_download("{repo_id}", "config.json")) as file:
    id2label = json.load(file)["id2label"]
session = onnxruntime.InferenceSession(hf_hub_download("{repo_id}", "{ONNX_FOLDER}/{file}"))
size = (processor["size"]["width"], processor["size"]["height"])
image = np.asarray(Image.open("image.png").convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32) / 255
pixel_values = ((image - processor["image_mean"]) / processor["image_std"]).transpose(2, 0, 1)[None]
(logits,) = session.run(["logits"], {{"pixel_values": pixel_values.astype(np.float32)}})
print(id2label[str(int(logits[0].argmax()))])
```

In a browser, with transformers.js:

```js
{transformers_js_usage(repo_id, dtype)}
```"""


def transformers_js_usage(repo_id: str, dtype: str) -> str:
    """
    JavaScript that classifies image.png with transformers.js from the repo's ONNX file of `dtype` ("fp32", or "q8"
    for model_quantized.onnx). transformers.js picks its model class by model type and does not know "vit_ft", so the
    snippet hands it the config as "vit": its ViT classifier takes `pixel_values` and gives `logits`, as the export.
    """
    return f"""import {{ AutoConfig, pipeline }} from "@huggingface/transformers";

// transformers.js runs the file as its ViT classifier: same input (pixel_values) and output (logits).
const config = await AutoConfig.from_pretrained("{repo_id}");
config.model_type = "vit";
const classifier = await pipeline("image-classification", "{repo_id}", {{ dtype: "{dtype}", config }});
const predictions = await classifier("image.png", {{ top_k: 5 }});"""


def _adapter_usage(run: RunRecord, repo_id: str) -> str:
    base = _hub_id(run.base_model)
    if base is None:  # ADAPTER_CONFIG names a directory of the machine it was trained on
        base = "BASE_MODEL_ID_OR_PATH"
        load = f'load_model("{repo_id}", base_model="{base}")'
    else:
        load = f'load_model("{repo_id}")  # the base model named in {ADAPTER_CONFIG}, with this adapter'
    return f"""## Usage

With vit-ft installed, `load_model` builds the base model with the adapter's labels and adds the adapter:

```python
from vit_ft import load_model

model = {load}
```

With peft directly, build the base model with vit-ft's class, as the adapter was trained (its labels and config
changes are in `{ADAPTER_RECORD}`; a transformers ViT/DeiT base is converted on load), then add the adapter.
Without vit-ft, merge the adapter first (`vit-ft merge-lora`) and share the merged model, which loads with
`trust_remote_code=True`:

```python
import json

from huggingface_hub import hf_hub_download
from peft import PeftModel
from vit_ft import ViTForImageClassification

with open(hf_hub_download("{repo_id}", "{ADAPTER_RECORD}")) as file:
    record = json.load(file)
id2label = {{int(i): name for i, name in record["id2label"].items()}}  # JSON keys are strings
base = ViTForImageClassification.from_pretrained(
    "{base}", id2label=id2label, label2id=record["label2id"], ignore_mismatched_sizes=True,
    **record["config_overrides"],
)
model = PeftModel.from_pretrained(base, "{repo_id}")
```"""


def _encoder_usage(repo_id: str) -> str:
    return f"""## Usage

Fine-tune it on labelled images with vit-ft: a recipe with `model_name_or_path: {repo_id}` (the decoder is dropped).
Image features, with vit-ft installed (without it, add `trust_remote_code=True` to run the repo's `{MODELING_CODE}`):

```python
import vit_ft  # registers vit_ft with transformers' Auto classes
from transformers import AutoModel, AutoModelForPreTraining, pipeline

extractor = pipeline("image-feature-extraction", model="{repo_id}")
features = extractor("image.png")
encoder = AutoModel.from_pretrained("{repo_id}")  # the ViT encoder alone
autoencoder = AutoModelForPreTraining.from_pretrained("{repo_id}")  # encoder and MAE decoder
```"""
