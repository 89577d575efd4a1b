"""PNG plots of a run: training curves from the Trainer's log history and the test confusion matrix."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_training_curves(log_history: list[dict], path: str | Path) -> Path:
    """Training and evaluation loss, evaluation accuracy and learning rate against the optimizer step."""
    figure, (loss_axis, accuracy_axis, lr_axis) = plt.subplots(1, 3, figsize=(15, 4))
    series = (
        ("loss", loss_axis, "train loss"),
        ("eval_loss", loss_axis, "eval loss"),
        ("eval_accuracy", accuracy_axis, "eval accuracy"),
        ("learning_rate", lr_axis, "lr"),
    )
    for key, axis, label in series:
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if points:
            steps, values = zip(*points)
            axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=label)
    for axis, title in ((loss_axis, "loss"), (accuracy_axis, "evaluation accuracy"), (lr_axis, "learning rate")):
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    loss_axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_confusion_matrix(references, predictions, label_names: list[str], path: str | Path) -> Path:
    """Counts of (true, predicted) label pairs; rows are true labels."""
    size = len(label_names)
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (np.asarray(references), np.asarray(predictions)), 1)
    side = min(max(4.0, 0.45 * size + 2), 30.0)
    figure, axis = plt.subplots(figsize=(side, side))
    axis.imshow(matrix, cmap="Blues")
    if size <= 30:
        axis.set_xticks(range(size), label_names, rotation=90)
        axis.set_yticks(range(size), label_names)
        for (row, column), count in np.ndenumerate(matrix):
            if count:
                color = "white" if count > matrix.max() / 2 else "black"
                axis.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"confusion matrix ({matrix.sum()} images, accuracy {np.trace(matrix) / max(matrix.sum(), 1):.4f})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
