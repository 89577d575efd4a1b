"""An exported model in ONNX Runtime: its logits, labels and preprocessing, read from the export's folder alone.

Nothing here imports vit_ft's model package or transformers' modeling code: a server of exported models needs torch
only for the image transform (tests/export/test_serving.py checks in a fresh interpreter).
"""

from pathlib import Path

import numpy as np
import torch

from ..data.transforms import ProcessorSizes, check_pixel_values
from ..output_dir import MODEL_CONFIG, ONNX_FOLDER, ONNX_MODEL, PROCESSOR_CONFIG, read_json
from . import import_extra

INPUT_NAME = "pixel_values"  # (batch, channels, height, width), as the PyTorch model's argument
OUTPUT_NAME = "logits"  # (batch, num_labels)


def is_export(folder: str | Path) -> bool:
    """Whether `folder` holds a `vit-ft export` (onnx/model.onnx beside its config)."""
    return (Path(folder) / ONNX_FOLDER / ONNX_MODEL).is_file()


def open_session(path: str | Path):
    """An ONNX Runtime CPU session of the file `path`, with torch's thread count (OMP_NUM_THREADS sets both)."""
    onnxruntime = import_extra("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile)
        reason = str(error).strip().splitlines()[0]
        raise OSError(f"ONNX Runtime cannot load {path} ({reason}): the file is damaged or not an ONNX model; "
                      "export it again with `vit-ft export`.") from error  # fmt: skip


class OnnxClassifier:
    """
    The exported classifier in `export_dir` (`vit-ft export`'s output), run in ONNX Runtime from `onnx/<file>`:
    `model.onnx` (float32) or `model_quantized.onnx` (int8 weights).
    """

    def __init__(self, export_dir: str | Path, file: str = ONNX_MODEL):
        folder = Path(export_dir)
        path = folder / ONNX_FOLDER / file
        if not path.is_file():
            hint = f"`vit-ft export --model MODEL --output {folder}` (--quantize int8 adds the int8 file)"
            raise FileNotFoundError(f"{path} does not exist: export the model with {hint}.")
        for name in (MODEL_CONFIG, PROCESSOR_CONFIG):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder} has {ONNX_FOLDER}/{file} but no {name}: export it again with "
                                        "`vit-ft export`, which writes both.")  # fmt: skip
        config = read_json(folder / MODEL_CONFIG)
        self.source = str(folder)
        self.id2label = {int(i): name for i, name in config["id2label"].items()}  # JSON keys are strings
        self.problem_type = config.get("problem_type")
        self.preprocessing = ProcessorSizes.from_json(folder / PROCESSOR_CONFIG)
        self.session = open_session(path)
        _check_input_size(self.session, self.preprocessing.output_size, path)

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, num_labels) float32 logits of `pixel_values` (batch, channels, height, width)."""
        check_pixel_values(pixel_values, self.preprocessing.output_size)
        array = np.ascontiguousarray(pixel_values.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})
        return torch.from_numpy(logits)


def _check_input_size(session, size: tuple[int, int], path: Path) -> None:
    """Raises a ValueError when the model's input (height, width) is not the preprocessor's output `size`."""
    inputs = {item.name: item.shape for item in session.get_inputs()}
    if INPUT_NAME not in inputs:
        raise ValueError(f"{path} has no input named {INPUT_NAME} (it has {', '.join(inputs)}): export the model "
                         "with `vit-ft export`.")  # fmt: skip
    expected = tuple(inputs[INPUT_NAME][2:])
    if expected != size:
        raise ValueError(f"{path} takes {expected[0]}x{expected[1]} images but its {PROCESSOR_CONFIG} makes "
                         f"{size[0]}x{size[1]}: export the model and its preprocessor together with `vit-ft "
                         "export`.")  # fmt: skip
