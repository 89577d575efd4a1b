"""`vit-ft predict`: the top classes of a saved model or an ONNX export for image files."""

import os
import stat

import torch

from ..data.transforms import build_eval_transform, decode_image
from .predictor import load_predictor

_BATCH_SIZE = 32


def read_image(path: str):
    """
    The RGB image in the file at `path`; an OSError that names the file when it is missing or not an image. A path
    that is not a regular file (a FIFO, a device, a folder) is refused before it is opened: reading a FIFO would wait
    for a writer forever.
    """
    if os.path.exists(path) and not os.path.isfile(path):
        kind = _file_kind(os.stat(path).st_mode)
        raise OSError(f"Cannot read image {path}: it is {kind}, not a regular file. Give the path of an image file.")
    try:
        return decode_image({"path": path, "bytes": None})
    except Exception as error:  # PIL raises many types for broken files
        raise OSError(f"Cannot read image {path}: {error}. Check the path and that PIL reads its format.") from error


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def class_scores(logits: torch.Tensor, problem_type: str | None) -> torch.Tensor:
    """Scores of `logits` (batch, num_labels) as transformers' image-classification pipeline gives them: a sigmoid
    for multi-label models and single-output ones, a softmax otherwise."""
    if problem_type == "multi_label_classification" or logits.shape[-1] == 1:
        return logits.sigmoid()
    return logits.softmax(-1)


def predict_images(
    model_dir: str,
    image_paths: list[str],
    top_k: int = 5,
    base_model: str | None = None,
    onnx_file: str | None = None,
    trust_remote_code: bool = False,
) -> list[dict]:
    """
    Classifies each image file with the model in `model_dir`: a vit_ft model, a LoRA adapter (on `base_model` or the
    base it names) or a `vit-ft export` folder (its `onnx_file`, default onnx/model.onnx; see `load_predictor`, also
    for `trust_remote_code`).
    Returns, per image in order, `{"image": path, "predictions": [{"label": ..., "score": ...}, ...]}` with the
    `top_k` best classes, best first: the output of transformers' image-classification pipeline. Images are
    preprocessed as `vit-ft evaluate` does, so a model and its export see the same pixels. All files are read before
    the model is loaded, so a missing or broken one fails at once, by name.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1.")
    images = [read_image(path) for path in image_paths]
    predictor = load_predictor(model_dir, base_model, onnx_file, trust_remote_code)
    transform = build_eval_transform(predictor.preprocessing)
    results = []
    for start in range(0, len(images), _BATCH_SIZE):
        pixel_values = torch.stack([transform(image) for image in images[start : start + _BATCH_SIZE]])
        scores = class_scores(predictor.logits(pixel_values), predictor.problem_type)
        best = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
        for values, indices in zip(best.values.tolist(), best.indices.tolist()):
            predictions = [{"label": predictor.id2label[i], "score": value} for value, i in zip(values, indices)]
            results.append({"image": image_paths[len(results)], "predictions": predictions})
    return results
