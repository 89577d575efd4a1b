"""`load_predictor`: one way to run a PyTorch model directory and a `vit-ft export` folder alike.

    from vit_ft import load_predictor
    predictor = load_predictor("outputs/digits_onnx")  # or "outputs/digits", or a LoRA adapter directory
    logits = predictor.logits(pixel_values)  # (batch, num_labels)

An export runs in ONNX Runtime and imports neither vit_ft's model package nor transformers' modeling code; a PyTorch
directory loads through `checkpoints`, imported only then.
"""

from typing import Protocol

import torch

from ..data.transforms import ProcessorSizes, check_pixel_values
from ..export.runtime import OnnxClassifier, is_export


class Predictor(Protocol):
    """What `vit-ft evaluate` and `vit-ft predict` need of a model, whatever runs it."""

    source: str  # the directory it was loaded from
    id2label: dict[int, str]
    problem_type: str | None  # the config's: None or "single_label_classification" for softmax scores
    preprocessing: ProcessorSizes  # or the transformers image processor, which has the same fields

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, num_labels) float32 logits on the CPU of `pixel_values` (batch, channels, height, width)."""
        ...


class TorchPredictor:
    """A vit_ft model (or a LoRA adapter merged into its base) in PyTorch, on the GPU when there is one."""

    def __init__(self, model_dir: str, base_model: str | None = None, trust_remote_code: bool = False):
        from ..checkpoints.loading import load_model, load_processor  # brings in the model package: PyTorch only

        model = load_model(model_dir, base_model, merge=True, trust_remote_code=trust_remote_code)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.source = str(model_dir)
        self.id2label = model.config.id2label
        self.problem_type = model.config.problem_type
        self.preprocessing = load_processor(model, model_dir, trust_remote_code=trust_remote_code)

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        config = self.model.config
        check_pixel_values(pixel_values, (config.image_size, config.image_size), config.num_channels)
        with torch.inference_mode():
            return self.model(pixel_values=pixel_values.to(self.device)).logits.float().cpu()


def load_predictor(
    model_dir: str, base_model: str | None = None, onnx_file: str | None = None, trust_remote_code: bool = False
) -> Predictor:
    """
    The model in `model_dir`, ready to score images. A folder with PyTorch weights (a model, its shards, or a LoRA
    adapter on `base_model` or the base it names) runs in PyTorch, even when it holds onnx/ too (`vit-ft push
    --with_onnx`), refused if it asks for code other than vit_ft's unless `trust_remote_code`; a `vit-ft export`
    folder (onnx/, no weights) runs in ONNX Runtime, which runs no code of its folder. `onnx_file`, a file of the
    folder's onnx/ (e.g. `model_quantized.onnx`), runs that file in ONNX Runtime: in a folder with weights, only a
    file exported from those weights.
    """
    if onnx_file is None and not is_export(model_dir):
        return TorchPredictor(model_dir, base_model, trust_remote_code)
    if base_model is not None:
        raise ValueError(
            f"base_model is for LoRA adapters in PyTorch, and {model_dir} is served from ONNX files "
            "(an export, or --onnx_file): leave it out."
        )
    return OnnxClassifier(model_dir, *([onnx_file] if onnx_file else []))
