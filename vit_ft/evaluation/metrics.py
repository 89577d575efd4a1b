"""Accuracy, top-5 accuracy and macro F1 through `evaluate`, from metric modules shipped in vit_ft (offline)."""

from pathlib import Path

import evaluate
import numpy as np
from transformers import EvalPrediction

from ..output_dir import SplitMetrics, top_k_key

_MODULES = Path(__file__).parent / "metric_modules"


def load_metric(name: str) -> evaluate.EvaluationModule:
    """Loads one of vit_ft's metric modules (accuracy, top_k_accuracy, macro_f1) from the package, not the Hub."""
    return evaluate.load(str(_MODULES / name))


class ClassificationMetrics:
    """`compute_metrics` for the Trainer: accuracy, top-k accuracy (k = min(5, classes)) and macro F1."""

    def __init__(self, num_labels: int):
        self.k = min(5, num_labels)
        self.accuracy = load_metric("accuracy")
        self.top_k = load_metric("top_k_accuracy")
        self.f1 = load_metric("macro_f1")

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        logits = np.asarray(prediction.predictions, dtype=np.float32)  # (examples, num_labels)
        references = np.asarray(prediction.label_ids)
        predicted = logits.argmax(axis=-1)
        # Keyed by SplitMetrics, which the model card reads them back with.
        return SplitMetrics(
            accuracy=self.accuracy.compute(predictions=predicted, references=references)["accuracy"],
            top_k_accuracy=self.top_k.compute(predictions=logits, references=references, k=self.k)[top_k_key(self.k)],
            k=self.k,
            f1=self.f1.compute(predictions=predicted, references=references)["f1"],
        ).as_metrics()


def first_logits(logits, labels):
    """`preprocess_logits_for_metrics`: keeps the averaged logits of models that also return per-head logits."""
    return logits[0] if isinstance(logits, tuple) else logits
