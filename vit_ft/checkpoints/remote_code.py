"""Code a model folder asks to run. transformers asks `Do you wish to run the custom code? [y/N]` on stdout when a
config's `auto_map` names a class it does not have; vit-ft never asks: it refuses such a folder in one line, unless
trust_remote_code is given. vit_ft's own remote code (configuration_vit_ft.py, modeling_vit_ft.py, which
save_pretrained copies beside every model) is no foreign code: vit-ft loads its installed classes instead."""

from pathlib import Path

from ..output_dir import MODEL_CONFIG, PROCESSOR_CONFIG, REMOTE_CODE
from .reading import read_json

_OWN_MODULES = tuple(Path(name).stem for name in REMOTE_CODE)  # configuration_vit_ft, modeling_vit_ft


def foreign_code(path_or_id: str, hub_kwargs: dict | None = None) -> tuple[str, str] | None:
    """(file, class reference) of the first `auto_map` entry of `path_or_id`'s config.json or
    preprocessor_config.json that names code other than vit_ft's own; None when there is none."""
    for filename in (MODEL_CONFIG, PROCESSOR_CONFIG):
        auto_map = (read_json(path_or_id, filename, hub_kwargs or {}) or {}).get("auto_map")
        if auto_map is None:
            continue
        if not isinstance(auto_map, dict):
            return filename, repr(auto_map)
        for references in auto_map.values():
            for reference in references if isinstance(references, list) else [references]:
                if reference is not None and not _is_own(reference):
                    return filename, str(reference)
    return None


def _is_own(reference) -> bool:
    """Whether `reference` (`module.Class`, or `repo--module.Class` for another repo's code) is vit_ft's class."""
    if not isinstance(reference, str):
        return False
    module = reference.split("--")[-1].rsplit(".", 1)[0]
    return module in _OWN_MODULES


def check_remote_code(path_or_id: str, trust_remote_code: bool, hub_kwargs: dict | None = None) -> None:
    """Raises a one-line ValueError when `path_or_id` asks for foreign code and `trust_remote_code` is not set."""
    if trust_remote_code:
        return
    found = foreign_code(path_or_id, hub_kwargs)
    if found is not None:
        filename, reference = found
        raise ValueError(
            f"{path_or_id}/{filename} asks to run code that is not vit_ft's ({reference}), which vit-ft "
            "does not run: pass --trust_remote_code (trust_remote_code=True in Python) to run it, only "
            "if you trust that code."
        )
