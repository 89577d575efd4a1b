"""The model card (README.md) of a vit-ft output directory: Hub metadata, how it was trained, results, usage, plots.

The card is written from the files a run leaves (`all_results.json`, `vit_ft_recipe.yaml`, `robustness_*.json`,
`config.json` or a LoRA adapter's `adapter_config.json` and `vit_ft_adapter.json`), so `vit-ft push` can write it
long after training, and `push_to_hub: true` writes the same card at the end of a run.
"""

import json
import logging
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

if TYPE_CHECKING:  # importing the Trainer takes a while; `import vit_ft` should not wait for it
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
BUILT_IN_DATASETS = {"digits": "scikit-learn digits (8x8)"}
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
                                   "distillation_temperature", "teacher_dtype", "student_from_teacher",
                                   "student_layers"),
    "image_corruptions": ("image_corruptions", "corruption_severity", "corruption_seed"),
}  # fmt: skip
_SPLITS = {"eval": "validation", "test": "test"}  # all_results.json prefix: split
_PLOTS = {"training_curves.png": "Training curves", "confusion_matrix.png": "Confusion matrix (test split)"}


@dataclass
class _Run:
    """What a card is written from: the files of one output directory."""

    recipe: dict
    results: dict
    robustness: list[dict]
    config: dict | None  # config.json of a model; an adapter has none
    adapter: dict | None  # peft's adapter_config.json; None for a model
    adapter_record: dict  # vit-ft's vit_ft_adapter.json: labels and config overrides of an adapter
    plots: list[str]

    @property
    def id2label(self) -> dict:
        return (self.config or self.adapter_record).get("id2label") or {}

    @property
    def base_model(self) -> str | None:
        """The model this one starts from: an adapter's base, or the checkpoint a run fine-tuned."""
        if self.adapter is not None:
            return self.adapter.get("base_model_name_or_path")
        return self.recipe.get("model_name_or_path")


def run_environment(args: "TrainingArguments") -> dict[str, int | str]:
    """The hardware a run used, for its card: `run_training` saves it as `run_*` metrics in all_results.json."""
    if args.device.type == "cuda":
        hardware = torch.cuda.get_device_name(args.device)
    else:
        hardware = f"{args.device.type.upper()} ({os.cpu_count()} cores)"
    return {"run_processes": args.world_size, "run_hardware": hardware}


def write_model_card(model_dir: str | Path, repo_id: str, license: str | None = None) -> Path:
    """Writes the card of `model_dir` (see `build_model_card`) to `model_dir/README.md`, replacing any there."""
    path = Path(model_dir) / CARD_NAME
    path.write_text(str(build_model_card(model_dir, repo_id, license)), encoding="utf-8")
    return path


def build_model_card(model_dir: str | Path, repo_id: str, license: str | None = None) -> ModelCard:
    """
    The card of the model or LoRA adapter in `model_dir`, to be pushed to `repo_id`. `license` (a Hub license id,
    e.g. `apache-2.0`) defaults to the recipe's `license`; with neither, the card states none rather than guess.
    Building it parses the metadata back with huggingface_hub's `ModelCardData`, offline: metadata the Hub would
    refuse (a malformed `model-index`) raises here, before anything is uploaded.
    """
    run = _read_run(Path(model_dir))
    license = license or run.recipe.get("license")
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
        _training_section(run),
        *(f"## {_PLOTS[plot]}\n\n![{_PLOTS[plot].lower()}]({plot})" for plot in run.plots),
    )
    body = "\n\n".join(section for section in sections if section)
    return ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}\n")


def check_model_dir(model_dir: str | Path) -> None:
    """Raises a ValueError unless `model_dir` holds a model (config.json) or a LoRA adapter (adapter_config.json)."""
    if not (Path(model_dir) / "config.json").is_file() and not (Path(model_dir) / "adapter_config.json").is_file():
        raise ValueError(f"{model_dir} holds neither config.json (a model) nor adapter_config.json (a LoRA "
                         "adapter): give the output_dir of a `vit-ft train` run.")  # fmt: skip


def _read_run(model_dir: Path) -> _Run:
    check_model_dir(model_dir)
    config, adapter = _read_json(model_dir / "config.json"), _read_json(model_dir / "adapter_config.json")
    if adapter is not None and adapter.get("peft_type") != "LORA":
        raise ValueError(f"{model_dir}/adapter_config.json holds a {adapter.get('peft_type')} adapter: vit-ft writes "
                         "cards for LoRA adapters only.")  # fmt: skip
    recipe_path = model_dir / "vit_ft_recipe.yaml"
    recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) if recipe_path.is_file() else {}
    return _Run(
        recipe=recipe or {},
        results=_read_json(model_dir / "all_results.json") or {},
        robustness=[_read_json(path) for path in sorted(model_dir.glob("robustness_*.json"))],
        config=config,
        adapter=adapter,
        adapter_record=_read_json(model_dir / "vit_ft_adapter.json") or {},
        plots=[plot for plot in _PLOTS if (model_dir / plot).is_file()],
    )


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def is_repo_id(name: str) -> bool:
    """Whether `name` has the form of a Hub repo id (`name` or `namespace/name`); a local path may have it too."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _hub_id(name: str | None) -> str | None:
    """`name` when it reads as a Hub repo id; None for a local directory, whose path means nothing on the Hub."""
    if not name or os.path.isabs(name) or name.startswith(".") or Path(name).exists() or not is_repo_id(name):
        return None
    return name


def _hub_link(name: str) -> str:
    return f"[{name}](https://huggingface.co/{name})" if _hub_id(name) else f"`{name}`"


def _dataset(recipe: dict) -> tuple[str, str] | None:
    """The dataset's (id, readable name): a Hub id, a built-in dataset, or image folders; None without a recipe."""
    name = recipe.get("dataset_name")
    if name in BUILT_IN_DATASETS:
        return name, BUILT_IN_DATASETS[name]
    if name:
        return name, name
    folder = recipe.get("train_dir") or recipe.get("test_dir")
    return ("imagefolder", f"image folder {Path(folder).name}") if folder else None


def _is_hub_dataset(dataset_id: str) -> bool:
    return dataset_id not in (*BUILT_IN_DATASETS, "imagefolder") and _hub_id(dataset_id) is not None


def _split_metrics(results: dict, prefix: str) -> dict[str, float]:
    """`{prefix}_accuracy`, `{prefix}_topK_accuracy`, `{prefix}_f1` and `{prefix}_loss`, without the prefix."""
    pattern = re.compile(rf"{prefix}_(accuracy|top\d+_accuracy|f1|loss)")
    return {match[1]: value for key, value in results.items() if (match := pattern.fullmatch(key))}


def _metric_names(metrics: Collection[str]) -> dict[str, tuple[str, str, dict | None]]:
    """Each metric's (Hub metric type, readable name, metric args), in the order the card shows them."""
    names = {}
    if "accuracy" in metrics:
        names["accuracy"] = ("accuracy", "Accuracy", None)
    for key in metrics:
        if match := re.fullmatch(r"top(\d+)_accuracy", key):
            k = int(match[1])  # min(5, classes): see ClassificationMetrics
            names[key] = ("top_k_accuracy", f"Top-{k} accuracy", {"k": k})
    if "f1" in metrics:
        names["f1"] = ("f1", "Macro F1", {"average": "macro"})
    return names


def _metric_keys(run: _Run) -> set[str]:
    """The metrics any split reports."""
    return {key for prefix in _SPLITS for key in _split_metrics(run.results, prefix)}


def _eval_results(run: _Run) -> list[EvalResult]:
    """The `model-index` entries: each split's accuracy, top-k accuracy and macro F1."""
    dataset = _dataset(run.recipe)
    if dataset is None:  # results without the recipe that says what data they are on
        return []
    eval_results = []
    for prefix, split in _SPLITS.items():
        metrics = _split_metrics(run.results, prefix)
        for key, (metric_type, metric_name, metric_args) in _metric_names(metrics).items():
            eval_results.append(EvalResult(
                task_type="image-classification", task_name="Image Classification", dataset_type=dataset[0],
                dataset_name=dataset[1], dataset_config=run.recipe.get("dataset_config_name"), dataset_split=split,
                metric_type=metric_type, metric_name=f"{metric_name} ({split})", metric_args=metric_args,
                metric_value=metrics[key],
            ))  # fmt: skip
    return eval_results


def _metadata(run: _Run, name: str, license: str | None) -> ModelCardData:
    dataset = _dataset(run.recipe)
    tags = ["vit_ft", "image-classification", "vision"]
    if run.adapter is not None:
        tags += ["peft", "lora"]
    if run.recipe.get("teacher_model_name_or_path"):
        tags.append("distillation")
    eval_results = _eval_results(run)
    return ModelCardData(
        library_name="peft" if run.adapter is not None else "transformers",
        license=license,
        tags=tags,
        datasets=[dataset[0]] if dataset and _is_hub_dataset(dataset[0]) else None,
        metrics=sorted({metric_type for metric_type, _, _ in _metric_names(_metric_keys(run)).values()}) or None,
        base_model=_hub_id(run.base_model),
        pipeline_tag="image-classification",
        model_name=name if eval_results else None,  # the model-index's name
        eval_results=eval_results or None,
    )


def _summary(run: _Run) -> str:
    dataset = _dataset(run.recipe)
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
    else:
        architecture = _architecture(run.config)
        lines = [f"A vit-ft Vision Transformer image classifier ({architecture}){_origin(run)}{trained_on}."]
    teacher = run.recipe.get("teacher_model_name_or_path")
    if teacher:
        kind = run.recipe.get("distillation_type")
        lines.append(f"It is a student distilled from the teacher {_hub_link(teacher)} with {kind or 'the'} "
                     "distillation of DeiT (Touvron et al. 2021): it learned from the teacher's predictions as "
                     "well as from the labels.")  # fmt: skip
    labels = [run.id2label[key] for key in sorted(run.id2label, key=int)]
    if labels:
        shown = ", ".join(labels[:20]) + (", ..." if len(labels) > 20 else "")
        lines.append(f"{len(labels)} classes: {shown}.")
    return "\n\n".join(lines)


def _origin(run: _Run) -> str:
    """Where training started, from the recipe; nothing for a directory without one (from `vit-ft convert`)."""
    if run.recipe.get("student_from_teacher"):
        return f", cut from the teacher (its layers {run.recipe['student_layers']}) and trained"
    if run.base_model:
        return f", fine-tuned from {_hub_link(run.base_model)}"
    if run.recipe.get("preset"):
        return f", trained from scratch (`{run.recipe['preset']}`)"
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


def _results_section(run: _Run) -> str | None:
    splits = {split: _split_metrics(run.results, prefix) for prefix, split in _SPLITS.items()}
    splits = {split: metrics for split, metrics in splits.items() if metrics}
    if not splits:
        return None
    names = _metric_names(_metric_keys(run))
    header = ["split", *(name for _, name, _ in names.values()), "loss"]
    rows = [[split, *(_number(metrics.get(key)) for key in names), _number(metrics.get("loss"))]
            for split, metrics in splits.items()]  # fmt: skip
    return "## Results\n\n" + _table(header, rows)


def _robustness_section(run: _Run) -> str | None:
    """One table per `vit-ft evaluate --corruptions` file: accuracy under each corruption against the clean one."""
    tables = []
    for report in run.robustness:
        clean = report["clean"]
        names = _metric_names(clean)
        header = ["corruption", *(name for _, name, _ in names.values()), "accuracy change"]
        rows = [["none (clean)", *(_number(clean[key]) for key in names), ""]]
        for corruption, metrics in report["corruptions"].items():
            change = metrics["accuracy"] - clean["accuracy"]
            rows.append([corruption, *(_number(metrics[key]) for key in names), f"{change:+.4f}"])
        tables.append(f"Split `{report['split']}` ({report['examples']} images), corruption severity "
                      f"{report['severity']} of 5, from `vit-ft evaluate --corruptions`:\n\n"
                      + _table(header, rows))  # fmt: skip
    return "## Robustness to image corruptions\n\n" + "\n\n".join(tables) if tables else None


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _training_section(run: _Run) -> str | None:
    if not run.recipe:
        return None
    lines = ["## Training", "Trained with `vit-ft train`; every setting of the run is in [vit_ft_recipe.yaml]"
             "(vit_ft_recipe.yaml), and the metrics in [all_results.json](all_results.json)."]  # fmt: skip
    if "train_runtime" in run.results:
        lines.append(_hardware_line(run))
    keys = [key for key in KEY_HYPERPARAMETERS if key in run.recipe]
    for switch, fields in METHOD_HYPERPARAMETERS.items():
        keys += [key for key in fields if run.recipe.get(switch) and key in run.recipe]
    # max_steps -1 means "train for num_train_epochs".
    rows = [[key, f"`{run.recipe[key]}`"] for key in keys if run.recipe[key] not in (None, -1)]
    lines.append(_table(["hyperparameter", "value"], rows))
    return "\n\n".join(lines)


def _hardware_line(run: _Run) -> str:
    results, recipe = run.results, run.recipe
    processes = results.get("run_processes")
    where = f" on {processes} process{'es' if processes != 1 else ''}, {results['run_hardware']}" if processes else ""
    line = f"Training took {_duration(results['train_runtime'])}{where}"
    if "epoch" in results:
        line += f", {results['epoch']:g} epochs"
    if processes and "per_device_train_batch_size" in recipe:
        per_device, accumulation = recipe["per_device_train_batch_size"], recipe.get("gradient_accumulation_steps", 1)
        line += (f"; batch size {per_device * accumulation * processes} (per device {per_device}, accumulation "
                 f"steps {accumulation}, processes {processes})")  # fmt: skip
    trainable, total = results.get("train_trainable_parameters"), results.get("train_total_parameters")
    if trainable is not None:
        line += f"; {trainable:,} trainable parameters" + (f" of {total:,}" if total else "")
    return line + "."


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _usage_section(run: _Run, repo_id: str) -> str:
    if run.adapter is not None:
        return _adapter_usage(run, repo_id)
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

Without vit-ft, transformers runs the modeling code this repo holds (`modeling_vit_ft.py`), so it must be trusted:

```python
from transformers import AutoModel, AutoModelForImageClassification, pipeline

classifier = pipeline("image-classification", model="{repo_id}", trust_remote_code=True)
predictions = classifier("image.png", top_k=5)
model = AutoModelForImageClassification.from_pretrained("{repo_id}", trust_remote_code=True)
encoder = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
```"""


def _adapter_usage(run: _Run, repo_id: str) -> str:
    base = _hub_id(run.base_model)
    if base is None:  # adapter_config.json names a directory of the machine it was trained on
        base = "BASE_MODEL_ID_OR_PATH"
        load = f'load_model("{repo_id}", base_model="{base}")'
    else:
        load = f'load_model("{repo_id}")  # the base model named in adapter_config.json, with this adapter'
    return f"""## Usage

With vit-ft installed, `load_model` builds the base model with the adapter's labels and adds the adapter:

```python
from vit_ft import load_model

model = {load}
```

With peft directly, build the base model with vit-ft's class, as the adapter was trained (its labels and config
changes are in `vit_ft_adapter.json`; a transformers ViT/DeiT base is converted on load), then add the adapter.
Without vit-ft, merge the adapter first (`vit-ft merge-lora`) and share the merged model, which loads with
`trust_remote_code=True`:

```python
import json

from huggingface_hub import hf_hub_download
from peft import PeftModel
from vit_ft import ViTForImageClassification

with open(hf_hub_download("{repo_id}", "vit_ft_adapter.json")) as file:
    record = json.load(file)
id2label = {{int(i): name for i, name in record["id2label"].items()}}  # JSON keys are strings
base = ViTForImageClassification.from_pretrained(
    "{base}", id2label=id2label, label2id=record["label2id"], ignore_mismatched_sizes=True,
    **record["config_overrides"],
)
model = PeftModel.from_pretrained(base, "{repo_id}")
```"""
