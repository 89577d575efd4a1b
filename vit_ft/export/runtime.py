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
from .provenance import check_exported_from, weights_files

INPUT_NAME = "pixel_values"  # (batch, channels, height, width), as the PyTorch model's argument
OUTPUT_NAME = "logits"  # (batch, num_labels)


def is_export(folder: str | Path) -> bool:
    """Whether `folder` holds a `vit-ft export`: onnx/model.onnx, and no weights of a model or adapter to serve."""
    return (Path(folder) / ONNX_FOLDER / ONNX_MODEL).is_file() and not weights_files(folder)


def open_session(path: str | Path):
    """An ONNX Runtime CPU session of the file `path`, with torch's thread count (OMP_NUM_THREADS sets both)."""
    onnxruntime = import_extra("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile)
        reason = str(error).strip().splitlines()[0]
        raise OSError(
            f"ONNX Runtime cannot load {path} ({reason}): the file is damaged or not an ONNX model; "
            "export it again with `vit-ft export`."
        ) from error


class OnnxClassifier:
    """
    The exported classifier in `export_dir` (`vit-ft export`'s output), run in ONNX Runtime from `onnx/<file>`:
    `model.onnx` (float32) or `model_quantized.onnx` (int8 weights). `file` is a name in onnx/ or a path to a file
    there. In a folder that also holds weights (`vit-ft push --with_onnx`), the file must record those weights.
    """

    def __init__(self, export_dir: str | Path, file: str | Path = ONNX_MODEL):
        folder = Path(export_dir)
        path = onnx_file_path(folder, file)
        for name in (MODEL_CONFIG, PROCESSOR_CONFIG):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder} has {ONNX_FOLDER}/{path.name} but no {name}: export it again with "
                    "`vit-ft export`, which writes both."
                )
        self.source = str(folder)
        self.id2label, self.problem_type = read_config(folder / MODEL_CONFIG)
        self.preprocessing = ProcessorSizes.from_json(folder / PROCESSOR_CONFIG)
        self.session = open_session(path)
        check_exported_from(self.session, path, folder)
        _check_input_size(self.session, self.preprocessing.output_size, path)
        _check_output_width(self.session, len(self.id2label), self.preprocessing.output_size, path)

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
        raise ValueError(
            f"{path} has no input named {INPUT_NAME} (it has {', '.join(inputs)}): export the model "
            "with `vit-ft export`."
        )
    expected = tuple(inputs[INPUT_NAME][2:])
    if expected != size:
        raise ValueError(
            f"{path} takes {expected[0]}x{expected[1]} images but its {PROCESSOR_CONFIG} makes "
            f"{size[0]}x{size[1]}: export the model and its preprocessor together with `vit-ft "
            "export`."
        )


_EXPORT_AGAIN = "export the model again with `vit-ft export`"
_EXPORT_AGAIN_ADVICE = "Export the model again with `vit-ft export`."  # after a sentence that names the file


def onnx_file_path(folder: Path, file: str | Path) -> Path:
    """
    The ONNX file `file` of the export in `folder`: a name in its onnx/ folder (model_quantized.onnx) or a path that
    resolves to a file there. Anything else is an error that lists the files onnx/ holds.
    """
    onnx_folder = folder / ONNX_FOLDER
    path = onnx_folder / file if Path(file).name == str(file) else Path(file)
    inside = path.resolve().parent == onnx_folder.resolve()
    if inside and path.is_file():
        return path
    held = sorted(item.name for item in onnx_folder.glob("*.onnx")) if onnx_folder.is_dir() else []
    holds = f"{onnx_folder} holds {', '.join(held)}" if held else f"{onnx_folder} holds no ONNX file"
    problem = "does not exist" if inside else f"is not a file of {onnx_folder}"
    hint = f"export the model with `vit-ft export --model MODEL --output {folder}` (--quantize int8 adds int8)"
    raise FileNotFoundError(f"--onnx_file {file}: {path} {problem} ({holds}): give one of those, or {hint}.")


def read_config(config_file: Path) -> tuple[dict[int, str], str | None]:
    """
    The labels (`id2label`, whose keys must be 0..n-1) and `problem_type` of an export's config.json; an error that
    names the file and the field otherwise.
    """
    config = read_json(config_file, _EXPORT_AGAIN_ADVICE)
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} holds a JSON {type(config).__name__}, not a model config: {_EXPORT_AGAIN}.")
    labels = config.get("id2label")
    if not isinstance(labels, dict) or not labels:
        found = "no id2label" if labels is None else f"id2label as a {type(labels).__name__}"
        raise ValueError(f'{config_file} has {found}, not the labels by index ("0": name, ...): {_EXPORT_AGAIN}.')
    indices = [str(index) for index in range(len(labels))]
    if sorted(labels) != sorted(indices):
        keys = sorted(labels)
        shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        raise ValueError(
            f"{config_file} has id2label keys {shown}, not the indices 0 to {len(labels) - 1}: {_EXPORT_AGAIN}."
        )
    return {int(index): name for index, name in labels.items()}, config.get("problem_type")  # JSON keys are strings


def _check_output_width(session, num_labels: int, size: tuple[int, int], path: Path) -> None:
    """Raises a ValueError when the model's logits are not `num_labels` wide, the labels of its config.json."""
    outputs = {item.name: item.shape for item in session.get_outputs()}
    if OUTPUT_NAME not in outputs:
        raise ValueError(
            f"{path} has no output named {OUTPUT_NAME} (it has {', '.join(outputs)}): export the model "
            "with `vit-ft export`."
        )
    width = outputs[OUTPUT_NAME][-1]
    if not isinstance(width, int):  # a symbolic dimension: the width of one image's logits
        channels = next(item.shape[1] for item in session.get_inputs() if item.name == INPUT_NAME)
        pixels = np.zeros((1, channels if isinstance(channels, int) else 3, *size), dtype=np.float32)
        width = session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0].shape[-1]
    if width != num_labels:
        raise ValueError(
            f"{path} gives {width} logits per image but its {MODEL_CONFIG} has {num_labels} labels: "
            "export the model and its config together with `vit-ft export`."
        )
