"""Accuracy: the share of predictions equal to the reference labels. Shipped inside vit_ft to load offline."""

import datasets
import evaluate
import numpy as np


class Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Share of predictions equal to the references.",
            citation="",
            inputs_description="predictions: predicted class ids; references: true class ids.",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict:
        return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(references)))}
