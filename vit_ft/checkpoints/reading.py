"""Reading checkpoint files: JSON records and weights, from a local directory or the Hub, and timm weight files."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers.modeling_utils import load_state_dict
from transformers.utils import cached_file

# The keyword arguments of `from_pretrained` that say where and how to fetch files.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder", "proxies")


def read_json(path_or_id: str, filename: str, hub_kwargs: dict) -> dict | None:
    """The content of `filename` in the directory or Hub repo `path_or_id`, or None when it has no such file."""
    resolved = cached_file(str(path_or_id), filename, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
    if resolved is None:
        return None
    with open(resolved, encoding="utf-8") as handle:
        return json.load(handle)


def read_weights(path_or_id: str, hub_kwargs: dict) -> dict[str, torch.Tensor]:
    """
    A checkpoint's weights: `model.safetensors`, a sharded safetensors index or `pytorch_model.bin` (read with
    `weights_only=True`, so no pickled code runs).
    """
    path_or_id = str(path_or_id)
    for filename in ("model.safetensors", "pytorch_model.bin"):
        resolved = cached_file(path_or_id, filename, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        if resolved is not None:
            return load_state_dict(resolved)  # .bin files are read with weights_only=True
    index = read_json(path_or_id, "model.safetensors.index.json", hub_kwargs)
    if index is None:
        raise OSError(f"{path_or_id} has no model.safetensors, model.safetensors.index.json or pytorch_model.bin.")
    weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        weights.update(load_state_dict(cached_file(path_or_id, shard, **hub_kwargs)))
    return weights


def read_timm_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads timm weights from `.safetensors`, or `.pth`/`.bin` with `weights_only=True` (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} does not exist.")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model", "state_dict_ema", "model_ema"):  # training checkpoints nest the weights
        if isinstance(state_dict, dict) and wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            return state_dict[wrapper]
    return state_dict


__all__ = ["HUB_KWARGS", "read_json", "read_timm_weights", "read_weights"]
