"""PNG plots: training curves from the Trainer's log history, the test confusion matrix, attention-map overlays and
accuracy under image corruptions against severity."""

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


def _heat_overlay(axis, image: np.ndarray, heat: np.ndarray) -> None:
    """`image` (H, W, 3) in [0, 1] with `heat` (H, W) in [0, 1] drawn over it, half transparent."""
    axis.imshow(image)
    axis.imshow(heat, cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
    axis.axis("off")


def plot_explanation(
    image: np.ndarray, heat: np.ndarray, predictions: list[tuple[str, float]], title: str, path: str | Path
) -> Path:
    """One image, its heat-map overlay and the top predicted labels with their probabilities, side by side."""
    figure, (image_axis, overlay_axis, bar_axis) = plt.subplots(1, 3, figsize=(12, 4))
    image_axis.imshow(image)
    image_axis.axis("off")
    image_axis.set_title("image")
    _heat_overlay(overlay_axis, image, heat)
    overlay_axis.set_title(title)
    names, scores = zip(*reversed(predictions))  # best at the top
    bar_axis.barh(range(len(names)), scores, color="tab:blue")
    bar_axis.set_yticks(range(len(names)), names)
    bar_axis.set_xlim(0, 1)
    for row, score in enumerate(scores):
        bar_axis.text(min(score + 0.02, 0.8), row, f"{score:.3f}", va="center")
    bar_axis.set_title("top predictions")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_attention_grid(
    images: list[np.ndarray],
    heats: list[np.ndarray],
    true_names: list[str],
    predicted_names: list[str],
    method: str,
    path: str | Path,
) -> Path:
    """A column per image: the image above its heat-map overlay, titled with its true and predicted labels."""
    columns = len(images)
    figure, axes = plt.subplots(2, columns, figsize=(2.2 * columns, 4.8), squeeze=False)
    for column, (image, heat, true, predicted) in enumerate(zip(images, heats, true_names, predicted_names)):
        axes[0, column].imshow(image)
        axes[0, column].axis("off")
        color = "tab:green" if true == predicted else "tab:red"
        axes[0, column].set_title(f"true {true}\npredicted {predicted}", color=color, fontsize=9)
        _heat_overlay(axes[1, column], image, heat)
    figure.suptitle(f"Heat maps ({method}); red titles are wrong predictions")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_robustness(clean_accuracy: float, curves: dict[str, dict[int, float]], path: str | Path) -> Path:
    """Accuracy against corruption severity, one line per corruption, with the clean accuracy as a dashed line."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, accuracies in curves.items():
        severities = sorted(accuracies)
        axis.plot(severities, [accuracies[severity] for severity in severities], marker="o", label=name)
    axis.axhline(clean_accuracy, color="black", linestyle="--", label=f"clean ({clean_accuracy:.3f})")
    axis.set_xlabel("severity")
    axis.set_ylabel("accuracy")
    axis.set_xticks(sorted({severity for accuracies in curves.values() for severity in accuracies}))
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title("Accuracy under image corruptions")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
