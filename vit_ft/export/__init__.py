"""Deployment: `vit-ft export` to ONNX, int8 quantization, and running an export in ONNX Runtime.

onnx, onnxscript and onnxruntime are the `export` extra: they are imported only where used (`import_extra`).
"""

import importlib
from types import ModuleType

from ..data import MissingExtraError

INSTALL_HINT = "pip install 'vit-ft[export]'"
DEFAULT_OPSET = 23  # opset 23 writes attention as one ONNX Attention node (docs/deployment.md: why)
# The opsets torch's exporter writes a vit_ft model in, found by trying (torch 2.14): below 17 and above 25 it falls
# back to 18 and logs the version converter's traceback.
OPSETS = range(17, 26)
QUANTIZATIONS = ("int8",)


def import_extra(name: str) -> ModuleType:
    """The module `name` of the `export` extra (onnx, onnxruntime, onnxscript), or a MissingExtraError."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        message = f"{name} is not installed (ONNX export and serving need it): {INSTALL_HINT}"
        raise MissingExtraError(message) from error
