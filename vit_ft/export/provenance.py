"""Which weights an ONNX file was exported from: the sha256 of the source folder's weights, in the file's metadata.

Every ONNX file vit-ft writes records it (`onnx_export.write_onnx_models`; ONNX Runtime's quantizer keeps it). An
ONNX file served from a folder that also holds weights (`vit-ft push --with_onnx` writes onnx/ beside the model) must
record those weights (`check_exported_from`): a model retrained or resumed in that folder would otherwise be answered
for by the ONNX file of the old one.
"""

import hashlib
from pathlib import Path

from ..output_dir import ADAPTER_WEIGHTS, MODEL_WEIGHT_SHARDS, MODEL_WEIGHTS

# The digest's key in the ONNX file's metadata_props (ONNX Runtime: `session.get_modelmeta().custom_metadata_map`).
WEIGHTS_DIGEST_KEY = "vit_ft_weights_sha256"


def weights_files(folder: str | Path) -> list[Path]:
    """The weights files of the model or LoRA adapter in `folder`, sorted by name; empty when it holds none."""
    folder = Path(folder)
    found = [folder / name for name in (MODEL_WEIGHTS, ADAPTER_WEIGHTS) if (folder / name).is_file()]
    return sorted(found + [path for path in folder.glob(MODEL_WEIGHT_SHARDS) if path.is_file()])


def weights_digest(folder: str | Path) -> str:
    """The sha256 of the weights files of `folder`: each file's name and bytes, in name order."""
    digest = hashlib.sha256()
    for path in weights_files(folder):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def check_exported_from(session, path: Path, folder: Path) -> None:
    """
    Raises a ValueError when the ONNX file `path` (open in `session`) was not exported from the weights in `folder`
    (it records other weights, or none). Nothing to check for a folder without weights, an export.
    """
    if not weights_files(folder):
        return
    recorded = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_DIGEST_KEY)
    if recorded == weights_digest(folder):
        return
    which = "other weights" if recorded else "weights it does not record"
    raise ValueError(
        f"{path} was exported from {which}, not from the weights in {folder}: serve the weights "
        f"(leave --onnx_file out), or export them again with `vit-ft export --model {folder} --output "
        f"EXPORT_DIR` (or `vit-ft push --model {folder} --repo_id REPO --with_onnx`)."
    )
