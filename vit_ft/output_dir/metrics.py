"""
The typed records of a run's scores. Their field names are the keys of the results files: the code that writes the
metrics builds them with `as_metrics` / `as_results`, and the card reads them back with `from_metrics` /
`from_results`, so a renamed field is renamed on both sides.
"""

from dataclasses import dataclass, field, fields

_TOP_K_KEY = "top{k}_accuracy"


def top_k_key(k: int) -> str:
    """The key of top-k accuracy: `top5_accuracy`."""
    return _TOP_K_KEY.format(k=k)


def _top_k_of(key: str) -> int | None:
    """k of a `top_k_key(k)`; None for any other key."""
    head, tail = _TOP_K_KEY.split("{k}")
    middle = key[len(head) : len(key) - len(tail)]
    return int(middle) if key.startswith(head) and key.endswith(tail) and middle.isdigit() else None


@dataclass(frozen=True)
class SplitMetrics:
    """
    One split's scores: what `ClassificationMetrics` computes, the Trainer's loss, and the images left out as
    undecodable (`ViTTrainer`). In a results file they are `<prefix>_<field>`, and top-k accuracy is
    `<prefix>_top<k>_accuracy`; without a prefix (robustness files, `compute_metrics`) just `<field>`.
    """

    accuracy: float | None = None
    top_k_accuracy: float | None = None
    k: int | None = None  # of top_k_accuracy: min(5, classes)
    f1: float | None = None  # macro F1
    loss: float | None = None
    skipped_images: int | None = None

    @property
    def has_scores(self) -> bool:
        return any(value is not None for value in (self.accuracy, self.top_k_accuracy, self.f1, self.loss))

    def as_metrics(self, prefix: str = "") -> dict[str, float | int]:
        """The set fields by their keys, `prefix`ed (`eval` makes `eval_accuracy`)."""
        metrics = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "k" and value is not None:
                name = top_k_key(self.k) if item.name == "top_k_accuracy" else item.name
                metrics[f"{prefix}_{name}" if prefix else name] = value
        return metrics

    @classmethod
    def from_metrics(cls, metrics: dict, prefix: str = "") -> "SplitMetrics":
        """The fields `as_metrics(prefix)` wrote, from `metrics`; other keys (timings) are left out."""
        start = f"{prefix}_" if prefix else ""
        values = {item.name: metrics.get(f"{start}{item.name}") for item in fields(cls)}
        for key, value in metrics.items():
            if key.startswith(start) and (k := _top_k_of(key[len(start) :])) is not None:
                values.update(top_k_accuracy=value, k=k)
        return cls(**values)


def _key(name: str):
    return field(default=None, metadata={"key": name})


@dataclass(frozen=True)
class TrainingFacts:
    """What a training run reports beside its scores, each field under the results key its metadata gives."""

    runtime: float | None = _key("train_runtime")  # seconds, the Trainer's
    epochs: float | None = _key("epoch")  # the Trainer's
    processes: int | None = _key("run_processes")
    hardware: str | None = _key("run_hardware")
    trainable_parameters: int | None = _key("train_trainable_parameters")
    total_parameters: int | None = _key("train_total_parameters")
    skipped_images: int | None = _key("train_skipped_images")  # left out of training batches as undecodable

    def as_results(self) -> dict[str, float | int | str]:
        """The set fields by their results keys."""
        return {
            item.metadata["key"]: getattr(self, item.name)
            for item in fields(self)
            if getattr(self, item.name) is not None
        }

    @classmethod
    def from_results(cls, results: dict) -> "TrainingFacts | None":
        """The facts in `results`; None when it holds no training (no runtime)."""
        facts = cls(**{item.name: results.get(item.metadata["key"]) for item in fields(cls)})
        return facts if facts.runtime is not None else None


@dataclass(frozen=True)
class RobustnessReport:
    """
    One `robustness_<split>.json`: scores on clean images and under each corruption at each severity scored. The file
    holds `severity` and `{corruption: scores}` for one severity, `severities` and `{corruption: {severity: scores}}`
    for several.
    """

    split: str
    examples: int
    severities: tuple[int, ...]  # each 1..5
    clean: SplitMetrics
    corruptions: dict[str, dict[int, SplitMetrics]]  # corruption -> severity -> scores
    plot: str | None = None  # the file name of its accuracy-against-severity picture, when there is one
    model_file: str | None = None  # the file scored (onnx/model_quantized.onnx); absent from older files

    @classmethod
    def from_json(cls, report: dict, plot: str | None = None) -> "RobustnessReport":
        if "severities" in report:
            severities = tuple(report["severities"])
            corruptions = {
                name: {int(severity): SplitMetrics.from_metrics(metrics) for severity, metrics in by_severity.items()}
                for name, by_severity in report["corruptions"].items()
            }
        else:
            severities = (report["severity"],)
            corruptions = {
                name: {report["severity"]: SplitMetrics.from_metrics(metrics)}
                for name, metrics in report["corruptions"].items()
            }
        return cls(
            report["split"],
            report["examples"],
            severities,
            SplitMetrics.from_metrics(report["clean"]),
            corruptions,
            plot,
            report.get("model_file"),
        )
