"""`vit-ft predict`: the top classes of a saved model for image files, through transformers' pipeline."""

from transformers import pipeline

from ..checkpoints.loading import load_model, load_processor
from ..data.transforms import decode_image


def read_image(path: str):
    """The RGB image in the file at `path`; an OSError that names the file when it is missing or not an image."""
    try:
        return decode_image({"path": path, "bytes": None})
    except Exception as error:  # PIL raises many types for broken files
        raise OSError(f"Cannot read image {path}: {error}. Check the path and that PIL reads its format.") from error


def predict_images(
    model_dir: str, image_paths: list[str], top_k: int = 5, base_model: str | None = None
) -> list[dict]:
    """
    Classifies each image file with the vit_ft model (or LoRA adapter, on `base_model` or the base it names) in
    `model_dir`. Returns, per image in order,
    `{"image": path, "predictions": [{"label": ..., "score": ...}, ...]}` with the `top_k` best classes, best first.
    All files are read before the model is loaded, so a missing or broken one fails at once, by name. Scores are
    the pipeline's: softmax for single-label models.
    """
    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be at least 1.")
    images = [read_image(path) for path in image_paths]
    model = load_model(model_dir, base_model, merge=True)
    processor = load_processor(model, model_dir)
    classifier = pipeline("image-classification", model=model, image_processor=processor)
    predictions = classifier(images, top_k=top_k)
    return [{"image": path, "predictions": scores} for path, scores in zip(image_paths, predictions)]
