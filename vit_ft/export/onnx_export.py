"""`vit-ft export`: a vit_ft model or LoRA adapter as an ONNX folder that loads and deploys on its own.

    vit-ft export --model outputs/digits --output outputs/digits_onnx --quantize int8

writes, as ONNX users on the Hub expect them:

    outputs/digits_onnx/config.json                 labels (id2label) and architecture
    outputs/digits_onnx/preprocessor_config.json    resize and normalisation
    outputs/digits_onnx/onnx/model.onnx             float32, input pixel_values (batch, 3, H, W), output logits
    outputs/digits_onnx/onnx/model_quantized.onnx   int8 weights (--quantize int8)
    outputs/digits_onnx/vit_ft_recipe.yaml          the run's recipe, when the model has one

Each ONNX file records the sha256 of the weights it was exported from (`provenance`).
"""

import contextlib
import fnmatch
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from ..checkpoints.loading import load_model, load_processor
from ..model.modeling_vit_ft import ViTForImageClassification
from ..output_dir import (
    EXPORT_PATTERNS,
    MODEL_CONFIG,
    ONNX_FOLDER,
    ONNX_MODEL,
    ONNX_QUANTIZED_MODEL,
    RECIPE,
    TEMPORARY_PREFIX,
    check_model_dir,
    run_files,
)
from . import DEFAULT_OPSET, OPSETS, QUANTIZATIONS, import_extra
from .provenance import WEIGHTS_DIGEST_KEY, weights_digest
from .quantization import quantize_int8
from .runtime import INPUT_NAME, OUTPUT_NAME, OnnxClassifier, is_export, open_session

logger = logging.getLogger(__name__)

# The exported file must give PyTorch's logits within this, on a random batch, or the export fails.
PARITY_TOLERANCE = 1e-4


class LogitsOnly(nn.Module):
    """
    The classifier with one input and one output, the logits (batch, num_labels): a distilled model's are the
    average of its two heads, as its own `logits` output.
    """

    def __init__(self, model: ViTForImageClassification):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def export_onnx(
    model_dir: str,
    output_dir: str,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    base_model: str | None = None,
    graph_rewrites: bool = True,
    overwrite: bool = False,
    trust_remote_code: bool = False,
) -> Path:
    """
    Exports the vit_ft model in `model_dir` (a LoRA adapter is merged into its base, `base_model` or the one it
    names) to `output_dir`: onnx/model.onnx with a dynamic batch, and with `quantize="int8"` onnx/model_quantized.onnx,
    beside config.json, preprocessor_config.json and the run's recipe. Returns `output_dir` as a Path.
    `graph_rewrites=False` leaves torch's export as it is (`write_onnx_models`).

    `output_dir` must be new or empty, or hold an earlier export that `overwrite` replaces as a whole; a model's or a
    run's folder is refused. The export is written to a temporary folder beside it and moved into place complete:
    a failure leaves `output_dir` as it was. A model folder that asks for code other than vit_ft's is refused unless
    `trust_remote_code`.
    """
    check_export_options(quantize, opset)
    folder = Path(output_dir)
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"--model {model_dir} is not a directory: give a `vit-ft train` output directory.")
    check_model_dir(model_dir)
    if folder.resolve() == Path(model_dir).resolve():
        raise ValueError(f"--output {output_dir} is the model's own directory: choose another folder for the export.")
    check_output_folder(folder, overwrite)
    model = load_model(model_dir, base_model, merge=True, trust_remote_code=trust_remote_code)
    # A damaged preprocessor_config.json stops here, before any write.
    processor = load_processor(model, model_dir, trust_remote_code=trust_remote_code)
    with _temporary_folder_beside(folder) as temporary:
        paths = write_onnx_models(
            model, temporary / ONNX_FOLDER, quantize, opset, graph_rewrites, source_digest=weights_digest(model_dir)
        )
        model.config.to_json_file(temporary / MODEL_CONFIG)  # the labels, and what the model is; no remote code to run
        processor.save_pretrained(temporary)
        if (Path(model_dir) / RECIPE).is_file():  # the run's data settings: `vit-ft evaluate --split validation`
            shutil.copyfile(Path(model_dir) / RECIPE, temporary / RECIPE)
        for path in paths:  # the export serves as it is: labels, preprocessing and sizes agree
            OnnxClassifier(temporary, path.name)
        _move_into_place(temporary, folder)
    logger.info(f"Exported {model_dir} to {folder}")
    return folder


def check_export_options(quantize: str | None, opset: int) -> None:
    """Raises a ValueError for a `quantize` or an `opset` that `export_onnx` cannot write, before any work."""
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize={quantize!r} is not supported: give {' or '.join(QUANTIZATIONS)}, or none.")
    if opset not in OPSETS:
        raise ValueError(
            f"--opset {opset}: torch's exporter cannot write this model in opset {opset}: choose an "
            f"opset from {OPSETS[0]} to {OPSETS[-1]}, e.g. {DEFAULT_OPSET}."
        )


def check_output_folder(folder: Path, overwrite: bool) -> None:
    """
    Raises an error unless `folder` may receive an export: it is missing or empty, or holds an earlier export (only
    files `vit-ft export` and `vit-ft evaluate` write there, EXPORT_PATTERNS) and `overwrite` is set.
    """
    if not folder.exists():
        return
    if not folder.is_dir():
        raise FileExistsError(f"--output {folder} is a file: give a new or empty folder for the export.")
    names = sorted(path.name for path in folder.iterdir())
    if not names:
        return
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    foreign = [name for name in names if not any(fnmatch.fnmatchcase(name, pattern) for pattern in EXPORT_PATTERNS)]
    if foreign or not is_export(folder):
        what = "a model or a training run" if run_files(folder) else "files that are not an export"
        raise FileExistsError(
            f"--output {folder} holds {what} ({shown}): `vit-ft export` never writes into a model's "
            "or another folder's files; give a new or empty folder."
        )
    if not overwrite:
        raise FileExistsError(
            f"--output {folder} already holds an export ({shown}): pass --overwrite to replace it "
            "as a whole, or give another folder."
        )


@contextlib.contextmanager
def _temporary_folder_beside(folder: Path) -> Iterator[Path]:
    """A new folder beside `folder`, named as a file being written (TEMPORARY_PREFIX); removed when the block ends."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.parent / f"{TEMPORARY_PREFIX}{folder.name}.{secrets.token_hex(4)}"
    temporary.mkdir()
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)  # gone already once moved into place


def _move_into_place(temporary: Path, folder: Path) -> None:
    """Renames the complete `temporary` folder to `folder`; what `folder` held (empty, or an old export) goes."""
    if not folder.exists():
        os.replace(temporary, folder)
        return
    old = folder.parent / f"{TEMPORARY_PREFIX}{folder.name}.old.{secrets.token_hex(4)}"
    os.replace(folder, old)
    try:
        os.replace(temporary, folder)
    except BaseException:
        os.replace(old, folder)
        raise
    shutil.rmtree(old)


def add_onnx_models(model_dir: str | Path, quantize: str | None = "int8", opset: int = DEFAULT_OPSET) -> list[Path]:
    """
    Writes the model in `model_dir` as model_dir/onnx/model.onnx (and int8), beside its own config: for the Hub. The
    onnx/ folder is written beside it first and replaces an earlier one whole.
    """
    check_export_options(quantize, opset)
    folder = Path(model_dir) / ONNX_FOLDER
    model = load_model(str(model_dir))
    with _temporary_folder_beside(folder) as temporary:
        written = write_onnx_models(model, temporary, quantize, opset, source_digest=weights_digest(model_dir))
        _move_into_place(temporary, folder)
    return [folder / path.name for path in written]


def write_onnx_models(
    model: ViTForImageClassification,
    onnx_folder: Path,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    graph_rewrites: bool = True,
    *,
    source_digest: str,
) -> list[Path]:
    """
    Writes `model` as onnx_folder/model.onnx, and its int8 version with `quantize="int8"`. Returns their paths. Each
    records `source_digest`, the `weights_digest` of the folder the model was loaded from (`provenance`).
    `graph_rewrites=False` writes torch's export as it is, without `graph_rewrites.rewrite_for_inference`.
    """
    import_extra("onnxscript")  # torch's exporter needs it; say which extra is missing before the model is traced
    onnx_ir = import_extra("onnx_ir")  # onnxscript's own representation of a graph, installed with it
    from .graph_rewrites import rewrite_for_inference  # onnxscript's rewriter: only once the extra is known there

    model = model.float().eval()
    onnx_folder.mkdir(parents=True, exist_ok=True)
    path = onnx_folder / ONNX_MODEL
    config = model.config
    # Batch 2 traced, any batch exported: the batch dimension is symbolic.
    shape = (2, config.num_channels, config.image_size, config.image_size)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    # No autograd in the traced graph: dropout and drop path vanish, and q, k and v stay three Linear layers on their
    # own weights, which the quantizer makes int8.
    with torch.no_grad():
        program = torch.onnx.export(
            LogitsOnly(model).eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
        expected = model(pixel_values=example).logits
    written = program.model.opset_imports.get("")
    if written != opset:
        raise ValueError(
            f"--opset {opset}: torch's exporter cannot write this model in opset {opset} (it fell back "
            f"to {written}): choose an opset from {OPSETS[0]} to {OPSETS[-1]}, e.g. "
            f"{DEFAULT_OPSET}."
        )
    # The Python stack and module path torch's exporter puts on every node: about 1 kB a node, a tenth of an int8
    # vit_tiny, and of no use to a runtime.
    exported = onnx_ir.passes.common.ClearMetadataAndDocStringPass()(program.model).model
    exported = rewrite_for_inference(exported) if graph_rewrites else exported
    exported.metadata_props[WEIGHTS_DIGEST_KEY] = source_digest
    onnx_ir.save(exported, path)
    _check_parity(path, example, expected)
    paths = [path]
    if quantize == "int8":
        paths.append(quantize_int8(path, onnx_folder / ONNX_QUANTIZED_MODEL))
    return paths


def _check_parity(path: Path, pixel_values: torch.Tensor, expected: torch.Tensor) -> None:
    """Raises a ValueError when ONNX Runtime's logits for `pixel_values` differ from PyTorch's `expected`."""
    (logits,) = open_session(path).run([OUTPUT_NAME], {INPUT_NAME: pixel_values.numpy()})
    difference = (torch.from_numpy(logits) - expected).abs().max().item()
    if difference > PARITY_TOLERANCE:
        raise ValueError(
            f"{path} gives logits {difference:.2e} away from PyTorch's (more than {PARITY_TOLERANCE}): "
            "the export is wrong; report it with the model's config.json."
        )
