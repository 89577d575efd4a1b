"""
What an output directory says about its run, as a typed `RunRecord` read from the files the run left: a model card
is written from it, long after training if need be.
"""

from dataclasses import dataclass, field
from pathlib import Path

from .metrics import RobustnessReport, SplitMetrics, TrainingFacts
from .names import (
    ADAPTER_CONFIG,
    ADAPTER_RECORD,
    ALL_RESULTS,
    MODEL_CONFIG,
    ONNX_FOLDER,
    ONNX_MODELS,
    PLOTS,
    RECIPE,
    robustness_file,
)
from .reading import read_json, read_yaml

# The results prefix of each split the Trainer scores (`metric_key_prefix` in run_training).
SPLIT_PREFIXES = {"validation": "eval", "test": "test"}


@dataclass(frozen=True)
class RunRecord:
    """What an output directory says about its run: what a model card is written from (`read_run`)."""

    recipe: dict  # the resolved recipe; empty for a directory no run wrote (`vit-ft convert`)
    splits: dict[str, SplitMetrics]  # validation, test: the splits with scores
    training: TrainingFacts | None  # None without a training run's results
    robustness: list[RobustnessReport]
    config: dict | None  # config.json of a model; an adapter has none
    adapter: dict | None  # peft's adapter_config.json; None for a model
    adapter_record: dict  # ADAPTER_RECORD of an adapter
    plots: list[str]  # the PLOTS present
    onnx_models: list[str] = field(default_factory=list)  # the ONNX_MODELS present in ONNX_FOLDER

    @property
    def id2label(self) -> dict:
        return (self.config or self.adapter_record).get("id2label") or {}

    @property
    def base_model(self) -> str | None:
        """The model this one starts from: an adapter's base, or the checkpoint a run fine-tuned."""
        if self.adapter is not None:
            return self.adapter.get("base_model_name_or_path")
        return self.recipe.get("model_name_or_path")


def check_model_dir(model_dir: str | Path) -> None:
    """Raises a ValueError unless `model_dir` holds a model (config.json) or a LoRA adapter (adapter_config.json)."""
    if not (Path(model_dir) / MODEL_CONFIG).is_file() and not (Path(model_dir) / ADAPTER_CONFIG).is_file():
        raise ValueError(
            f"{model_dir} holds neither {MODEL_CONFIG} (a model) nor {ADAPTER_CONFIG} (a LoRA "
            "adapter): give the output_dir of a `vit-ft train` run."
        )


def read_run(model_dir: str | Path) -> RunRecord:
    """The record of the model or adapter in `model_dir` and of the run that wrote it, from the files it left."""
    check_model_dir(model_dir)
    folder = Path(model_dir)
    results = read_json(folder / ALL_RESULTS) or {}
    splits = {split: SplitMetrics.from_metrics(results, prefix) for split, prefix in SPLIT_PREFIXES.items()}
    recipe_path = folder / RECIPE
    recipe = read_yaml(recipe_path) if recipe_path.is_file() else None
    return RunRecord(
        recipe=recipe or {},
        splits={split: metrics for split, metrics in splits.items() if metrics.has_scores},
        training=TrainingFacts.from_results(results),
        robustness=[_robustness_report(path) for path in sorted(folder.glob(robustness_file("*")))],
        config=read_json(folder / MODEL_CONFIG),
        adapter=read_json(folder / ADAPTER_CONFIG),
        adapter_record=read_json(folder / ADAPTER_RECORD) or {},
        plots=[plot for plot in PLOTS if (folder / plot).is_file()],
        onnx_models=[name for name in ONNX_MODELS if (folder / ONNX_FOLDER / name).is_file()],
    )


def _robustness_report(path: Path) -> RobustnessReport:
    plot = path.with_suffix(".png")  # robustness_plot(split) beside robustness_file(split)
    return RobustnessReport.from_json(read_json(path), plot.name if plot.is_file() else None)
