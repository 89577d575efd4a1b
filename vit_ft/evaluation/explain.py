"""`vit-ft explain`: what a saved model relies on in image files, as heat maps; and the heat-map grid of a run."""

import logging
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset

from ..checkpoints.loading import load_model, load_processor
from ..data.transforms import build_eval_transform
from .attention_maps import DEFAULT_METHOD, attention_maps, check_method
from .plots import plot_attention_grid, plot_explanation
from .predict import read_image

logger = logging.getLogger(__name__)

_BATCH = 16  # images per forward pass: a few hundred files do not need one batch of all


def explain_images(
    model_dir: str,
    image_paths: list[str],
    output_dir: str,
    method: str = DEFAULT_METHOD,
    label: str | None = None,
    top_k: int = 3,
    base_model: str | None = None,
    trust_remote_code: bool = False,
) -> list[Path]:
    """
    Writes one PNG per image file to `output_dir`, `<stem>_<method>.png`: the image as the model sees it (resized
    and cropped by its image processor), its heat map by `method` (see `attention_maps`) over it, and the `top_k`
    predicted labels with their probabilities. A class-specific map explains the predicted class, or `label` (a class
    name of the model). The model in `model_dir` is a vit_ft model or a LoRA adapter (on `base_model` or
    the base it names); a folder that asks for code other than vit_ft's is refused unless `trust_remote_code`. All
    files are read before the model is loaded. Returns the paths written.
    """
    check_method(method)
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1.")
    images = [read_image(path) for path in image_paths]
    model = load_model(model_dir, base_model, merge=True, trust_remote_code=trust_remote_code)
    label_id = None if label is None else _label_id(model.config.id2label, label, model_dir)
    processor = load_processor(model, model_dir, trust_remote_code=trust_remote_code)
    transform = build_eval_transform(processor)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    names = model.config.id2label
    written = []
    for start in range(0, len(images), _BATCH):
        pixel_values = torch.stack([transform(image) for image in images[start : start + _BATCH]]).to(device)
        labels = None if label_id is None else torch.full((len(pixel_values),), label_id, device=device)
        maps = attention_maps(model, pixel_values, method, labels)
        probabilities = maps.logits.float().softmax(-1).cpu()
        for offset, pixels in enumerate(pixel_values):
            best = probabilities[offset].topk(min(top_k, len(names)))
            predictions = [(names[index], score) for index, score in zip(best.indices.tolist(), best.values.tolist())]
            title = f"{method}: {names[maps.labels[offset].item()]}"
            path = Path(output_dir) / _file_name(image_paths[start + offset], method, written)
            path.parent.mkdir(parents=True, exist_ok=True)
            heat = maps.pixels[offset].cpu().numpy()
            written.append(plot_explanation(display_image(pixels, processor), heat, predictions, title, path))
    return written


def _label_id(id2label: dict[int, str], label: str, model_dir: str) -> int:
    ids = {name: index for index, name in id2label.items()}
    if label not in ids:
        names = [id2label[index] for index in sorted(id2label)]
        raise ValueError(f"--label {label!r} is not a class of {model_dir}; its classes are: {', '.join(names)}.")
    return ids[label]


def _file_name(image_path: str, method: str, written: list[Path]) -> str:
    """`<stem>_<method>.png`, with the image's position added when another image of that stem came first."""
    name = f"{Path(image_path).stem}_{method}.png"
    if any(path.name == name for path in written):
        name = f"{Path(image_path).stem}_{len(written)}_{method}.png"
    return name


def display_image(pixel_values: torch.Tensor, processor) -> np.ndarray:
    """A normalised `(3, H, W)` model input back to an `(H, W, 3)` picture in [0, 1]."""
    mean = torch.tensor(processor.image_mean, device=pixel_values.device)[:, None, None]
    std = torch.tensor(processor.image_std, device=pixel_values.device)[:, None, None]
    return (pixel_values.float() * std + mean).clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _spread(length: int, count: int) -> list[int]:
    """Up to `count` distinct indices into `length` items, evenly spaced from the first to the last."""
    return sorted({round(index) for index in np.linspace(0, length - 1, min(count, length))}) if length else []


def write_attention_grid(
    model_dir: str | Path,
    dataset: Dataset,
    path: str | Path,
    device: torch.device,
    count: int = 8,
    method: str = DEFAULT_METHOD,
    scanned: int = 256,
) -> Path | None:
    """
    Writes `path`: `count` images of `dataset` (transformed examples: `pixel_values`, `labels`) with their maps by
    `method` and their true and predicted labels: right predictions among `scanned` images spread through the
    split, and wrong ones (up to half of `count`) when there are any. The model is read back from `model_dir`, as
    saved, so that the picture shows the model the run wrote, whatever wrapped or sharded it in training. Returns
    None when none of the scanned images decodes.
    """
    model = load_model(str(model_dir), merge=True).to(device)
    processor = load_processor(model, str(model_dir))
    # Spread through the split: image folders list their classes one after the other.
    rows = dataset.select(_spread(len(dataset), scanned))[:]
    kept = [(pixels, label) for pixels, label in zip(rows["pixel_values"], rows["labels"]) if pixels is not None]
    if not kept:
        return None
    pixel_values = torch.stack([pixels for pixels, _ in kept]).to(device)  # (scanned, 3, H, W)
    labels = torch.tensor([label for _, label in kept])
    with torch.inference_mode():
        predicted = torch.cat(
            [model(pixel_values=batch).logits.argmax(-1).cpu() for batch in pixel_values.split(_BATCH)]
        )
    wrong = (predicted != labels).nonzero()[:, 0].tolist()
    wrong = [wrong[index] for index in _spread(len(wrong), count // 2)]
    right = (predicted == labels).nonzero()[:, 0].tolist()
    chosen = [right[index] for index in _spread(len(right), count - len(wrong))] + wrong
    maps = attention_maps(model, pixel_values[chosen], method)
    names = model.config.id2label
    return plot_attention_grid(
        [display_image(pixel_values[index], processor) for index in chosen],
        list(maps.pixels.cpu().numpy()),
        [names[labels[index].item()] for index in chosen],
        [names[predicted[index].item()] for index in chosen],
        method,
        path,
    )
