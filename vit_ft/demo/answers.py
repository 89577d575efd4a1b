"""What the demo shows for one image: the top classes, the picture the model saw with its attention map, a note.

Nothing here imports Gradio: `DemoModel.answer` is the demo's whole computation, tested directly.
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage

from ..data.arguments import CORRUPTIONS
from ..data.corruptions import corrupt
from ..data.transforms import build_eval_transform, display_image
from ..evaluation.attention_maps import DEFAULT_METHOD, attention_maps
from ..evaluation.predict import class_scores
from ..evaluation.predictor import Predictor, TorchPredictor, load_predictor

NO_CORRUPTION = "none"
CORRUPTION_CHOICES = (NO_CORRUPTION, *CORRUPTIONS)
# The picture is drawn at least this wide: the model's own view can be 16 pixels (digits), too small to see.
PICTURE_WIDTH = 256
# How much of the picture shows through the heat map's colours.
IMAGE_SHARE = 0.5
NO_MAP_NOTE = (
    "This is an ONNX export: it gives scores only, so there is no attention map. Serve the PyTorch model's "
    "folder to see where the model looks."
)


@dataclass
class Answer:
    scores: dict[str, float]  # the top classes, best first
    picture: np.ndarray  # (height, width, 3) uint8: the image as the model saw it, under its attention map if any
    note: str  # what the picture shows, and any conversion of the upload


class DemoModel:
    """A model served by the demo: a PyTorch model (with attention maps) or an ONNX export (scores only)."""

    def __init__(self, predictor: Predictor, top_k: int = 5):
        self.predictor = predictor
        self.top_k = min(top_k, len(predictor.id2label))
        self.transform = build_eval_transform(predictor.preprocessing)
        self.has_attention_maps = isinstance(predictor, TorchPredictor)

    def answer(self, image: PILImage.Image, corruption: str = NO_CORRUPTION, severity: int = 3) -> Answer:
        """
        The model's answer for `image` (RGB) under `corruption` (one of CORRUPTION_CHOICES) at `severity` 1..5. The
        corruption's noise is seeded, so moving the slider back gives the same answer again.
        """
        if corruption != NO_CORRUPTION:
            image = corrupt(image, corruption, severity, seed=0)
        pixel_values = self.transform(image)[None]  # (1, channels, height, width)
        picture = display_image(pixel_values[0], self.predictor.preprocessing)  # (height, width, 3) in [0, 1]
        if self.has_attention_maps:
            logits, heat = self._logits_and_map(pixel_values)
            picture = overlay(picture, heat)
            note = "Brighter is where the model looked (its attention map), on the image as the model saw it."
        else:
            logits = self.predictor.logits(pixel_values)
            note = NO_MAP_NOTE
        scores = class_scores(logits.float(), self.predictor.problem_type)[0]
        best = scores.topk(self.top_k)
        names = self.predictor.id2label
        top = {names[index]: score for index, score in zip(best.indices.tolist(), best.values.tolist())}
        return Answer(top, enlarged(picture), note)

    def _logits_and_map(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        # The method `vit-ft explain` uses, of the predicted class.
        maps = attention_maps(self.predictor.model, pixel_values.to(self.predictor.device), DEFAULT_METHOD)
        return maps.logits.cpu(), maps.pixels[0].cpu().numpy()


def load_demo_model(
    model: str, onnx_file: str | None = None, base_model: str | None = None, trust_remote_code: bool = False
) -> DemoModel:
    """The model to serve, loaded as `vit-ft predict` loads it (see `load_predictor`)."""
    return DemoModel(load_predictor(model, base_model, onnx_file, trust_remote_code))


def overlay(picture: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """`picture` (height, width, 3) in [0, 1] under the colours of `heat` (height, width) in [0, 1], inferno's."""
    from matplotlib import colormaps

    colours = colormaps["inferno"](heat)[..., :3]  # (height, width, 3)
    return IMAGE_SHARE * picture + (1 - IMAGE_SHARE) * colours


def enlarged(picture: np.ndarray) -> np.ndarray:
    """`picture` in [0, 1] as uint8, scaled up without smoothing to PICTURE_WIDTH when narrower: the model's pixels."""
    image = PILImage.fromarray((picture * 255).round().astype(np.uint8))
    if image.width < PICTURE_WIDTH:
        factor = -(-PICTURE_WIDTH // image.width)  # a whole factor keeps every pixel square
        image = image.resize((image.width * factor, image.height * factor), PILImage.Resampling.NEAREST)
    return np.asarray(image)
