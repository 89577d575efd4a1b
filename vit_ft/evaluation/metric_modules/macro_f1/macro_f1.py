"""Macro F1: the unweighted mean over classes of 2PR / (P + R). Shipped inside vit_ft to load offline."""

import datasets
import evaluate
import numpy as np


class MacroF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Mean over classes of the F1 score; a class never predicted nor present is left out.",
            citation="",
            inputs_description="predictions: predicted class ids; references: true class ids.",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict:
        predictions, references = np.asarray(predictions), np.asarray(references)
        scores = []
        for label in np.union1d(predictions, references):
            true_positive = np.sum((predictions == label) & (references == label))
            # F1 = 2TP / (2TP + FP + FN); the denominator counts predictions and references of this class.
            scores.append(2 * true_positive / (np.sum(predictions == label) + np.sum(references == label)))
        return {"f1": float(np.mean(scores))}
