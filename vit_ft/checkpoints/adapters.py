"""LoRA adapter directories as checkpoints: telling one from a model, and what its base model must be."""

import os

from ..output_dir import ADAPTER_CONFIG, ADAPTER_RECORD, MODEL_CONFIG
from .reading import read_json


def is_adapter(path_or_id: str, hub_kwargs: dict | None = None) -> bool:
    return read_json(path_or_id, ADAPTER_CONFIG, hub_kwargs or {}) is not None


def read_adapter(adapter: str, hub_kwargs: dict) -> tuple[str | None, dict[int, str] | None, dict]:
    """
    What the base model of `adapter` must be: the base adapter_config.json names, the labels of the trained head(s)
    (None for an adapter peft wrote without vit-ft) and the config fields the run changed.
    """
    base = read_json(adapter, ADAPTER_CONFIG, hub_kwargs).get("base_model_name_or_path")
    record = read_json(adapter, ADAPTER_RECORD, hub_kwargs) or {}
    id2label = {int(i): name for i, name in record["id2label"].items()} if "id2label" in record else None
    return base, id2label, record.get("config_overrides") or {}


def check_base_model(base: str | None, adapter: str, hub_kwargs: dict) -> None:
    """Raises an error that says where it looked unless `adapter`'s base model `base` has a config.json."""
    if not base:
        raise ValueError(f"The adapter {adapter} names no base model: pass --base_model DIR_OR_HUB_ID.")
    try:
        base_config = read_json(base, MODEL_CONFIG, hub_kwargs)
    except (OSError, ValueError) as error:  # not a directory, and not a reachable Hub repo or not a Hub id at all
        base_config, reason = None, str(error).splitlines()[0]
    else:
        reason = f"it has no {MODEL_CONFIG}"
    if base_config is None:
        raise OSError(
            f"The base model of adapter {adapter} was not found: looked for {base!r} as a local directory "
            f"({os.path.abspath(base)}) and as a Hub id ({reason}). Pass --base_model DIR_OR_HUB_ID (base_model in "
            f"Python) to say where it is."
        )
