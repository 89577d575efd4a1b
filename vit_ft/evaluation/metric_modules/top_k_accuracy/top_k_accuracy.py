"""Top-k accuracy: the share of examples whose label is among the k highest scores. Shipped inside vit_ft."""

import datasets
import evaluate
import numpy as np


class TopKAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Share of examples whose reference is among the k highest-scoring classes.",
            citation="",
            inputs_description="predictions: per-class scores (num_classes,); references: true class ids; k.",
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k: int = 5) -> dict:
        scores = np.asarray(predictions)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (examples, k)
        hits = (top == np.asarray(references)[:, None]).any(axis=1)
        return {f"top{k}_accuracy": float(hits.mean())}
