"""Reading checkpoint files: JSON records and weights, from a local directory or the Hub, and timm weight files.

A damaged file is a `DamagedFileError` that names it; a source that is not a local folder is looked up on the Hub once
(`check_hub_source`), so an unreachable Hub is said at once rather than after huggingface_hub's retries.
"""

import contextlib
import functools
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import torch
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from safetensors import SafetensorError
from transformers.modeling_utils import load_state_dict

from .. import output_dir
from ..output_dir import MODEL_WEIGHTS, MODEL_WEIGHTS_INDEX, DamagedFileError, safetensors_problem

# The keyword arguments of `from_pretrained` that say where and how to fetch files.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
# How long the one lookup of a Hub repo may wait for an answer: a few seconds tell a Hub that answers from one that
# cannot be reached. huggingface_hub itself retries a failed download for about 23 s per file before it gives up.
HUB_TIMEOUT = 5.0


def read_json(path_or_id: str, filename: str, hub_kwargs: dict) -> dict | None:
    """The content of `filename` in the directory or Hub repo `path_or_id`, or None when it has no such file."""
    resolved = _resolve(path_or_id, filename, hub_kwargs)
    return output_dir.read_json(resolved) if resolved is not None else None


def _resolve(path_or_id: str, filename: str, hub_kwargs: dict) -> str | None:
    """
    The local path of `filename` in the directory or Hub repo `path_or_id` (downloaded into the Hub cache, or found
    there offline), or None when it has no such file.
    """
    path_or_id = str(path_or_id)
    if os.path.isdir(path_or_id):
        path = os.path.join(path_or_id, hub_kwargs.get("subfolder") or "", filename)
        return path if os.path.isfile(path) else None
    check_hub_source(path_or_id, hub_kwargs)
    try:
        return hf_hub_download(path_or_id, filename, **hub_kwargs)
    except EntryNotFoundError:  # not in the repo; offline, not in the cache
        return None


def check_hub_source(repo_id: str, hub_kwargs: dict) -> None:
    """
    Raises an OSError that says why unless the Hub repo `repo_id` can be read: the Hub answers and has it, or
    HF_HUB_OFFLINE is set and the Hub cache holds it. Asked once per repo and revision.
    """
    options = {key: hub_kwargs.get(key) for key in ("revision", "token", "cache_dir")}
    offline = constants.is_offline_mode() or bool(hub_kwargs.get("local_files_only"))
    _check_hub_source(repo_id, **options, offline=offline)


@functools.cache
def _check_hub_source(repo_id: str, revision: str | None, token, cache_dir: str | None, offline: bool) -> None:
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    cached = (cache / repo_folder_name(repo_id=repo_id, repo_type="model")).is_dir()
    where = f"{repo_id!r} is not a local folder, so it was looked up on the Hub ({constants.ENDPOINT})"
    if offline:
        if not cached:
            raise OSError(
                f"{repo_id!r} is not a local folder, and HF_HUB_OFFLINE is set, so it was looked up in the "
                f"Hub cache ({cache}), which does not hold it: download it while online, or give a local "
                "folder."
            )
        return
    try:
        HfApi().model_info(repo_id, revision=revision, token=token, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        return  # it exists: the download says what access it needs
    except RevisionNotFoundError:
        raise OSError(f"{where}, which has no revision {revision!r} of it: check model_revision.") from None
    except RepositoryNotFoundError:
        raise OSError(
            f"{where}, which has no such model: check the name (org/name), or log in (`hf auth login`) "
            "if it is private."
        ) from None
    except (httpx2.TransportError, OfflineModeIsEnabled, HfHubHTTPError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        in_cache = f" The Hub cache holds {repo_id}: HF_HUB_OFFLINE=1 uses it." if cached else ""
        raise OSError(
            f"{where}, which could not be reached ({reason}). Check the network connection and "
            f"HF_ENDPOINT, or give a local folder.{in_cache}"
        ) from error


def read_weights(path_or_id: str, hub_kwargs: dict) -> dict[str, torch.Tensor]:
    """
    A checkpoint's weights: `model.safetensors`, a sharded safetensors index or `pytorch_model.bin` (read with
    `weights_only=True`, so no pickled code runs).
    """
    path_or_id = str(path_or_id)
    for filename in (MODEL_WEIGHTS, "pytorch_model.bin"):
        resolved = _resolve(path_or_id, filename, hub_kwargs)
        if resolved is not None:
            return read_weight_file(resolved)
    index = read_json(path_or_id, MODEL_WEIGHTS_INDEX, hub_kwargs)
    if index is None:
        raise OSError(f"{path_or_id} has no {MODEL_WEIGHTS}, {MODEL_WEIGHTS_INDEX} or pytorch_model.bin.")
    weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        resolved = _resolve(path_or_id, shard, hub_kwargs)
        if resolved is None:
            raise OSError(f"{path_or_id} has no {shard}, which its {MODEL_WEIGHTS_INDEX} lists. {_WEIGHTS_ADVICE}")
        weights.update(read_weight_file(resolved))
    return weights


_WEIGHTS_ADVICE = "Download or save the weights again, or use another checkpoint."


def read_weight_file(path: str | Path) -> dict[str, torch.Tensor]:
    """
    The tensors of one weights file: safetensors, or a torch pickle read with `weights_only=True`. A damaged file,
    or a pickle that holds more than tensors, is a DamagedFileError that names it.
    """
    path = str(path)
    try:
        return load_state_dict(path)  # .bin and .pth files are read with weights_only=True
    except SafetensorError as error:
        raise _damaged_safetensors(path, error) from error
    except pickle.UnpicklingError as error:
        # torch names the first object it refused: "Unsupported global: GLOBAL builtins.print was not ...".
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        holds = f"it pickles {refused[1]}, which is not a tensor" if refused else "it pickles more than tensors"
        raise DamagedFileError(
            f"{path} was refused by torch.load(weights_only=True): {holds}, and unpickling it could run code. If you "
            "trust the file, load it with weights_only=False, save its tensors with safetensors.torch.save_file and "
            "pass that file instead."
        ) from error
    except (RuntimeError, EOFError) as error:  # torch's zip reader on a truncated or foreign file
        reason = str(error).split(". ")[0] or type(error).__name__
        raise DamagedFileError(
            f"{path} is not a readable torch file, or is truncated ({reason}). {_WEIGHTS_ADVICE}"
        ) from error


def _damaged_safetensors(path: str, error: Exception) -> DamagedFileError:
    problem = safetensors_problem(path) or f"could not be read ({error})"
    return DamagedFileError(f"{path} {problem}. {_WEIGHTS_ADVICE}")


@contextlib.contextmanager
def naming_damaged_weights(path_or_id: str, filenames: tuple[str, ...], hub_kwargs: dict) -> Iterator[None]:
    """
    For loaders that read weights themselves (`from_pretrained`): a SafetensorError inside becomes a
    DamagedFileError that names the damaged file among `filenames` of `path_or_id` (or the source, if none is found).
    """
    try:
        yield
    except SafetensorError as error:
        for filename in filenames:
            resolved = _resolve(path_or_id, filename, hub_kwargs)
            if resolved is not None and safetensors_problem(resolved):
                raise _damaged_safetensors(resolved, error) from error
        raise DamagedFileError(
            f"The weights of {path_or_id} could not be read ({error}). {_WEIGHTS_ADVICE}"
        ) from error


def read_timm_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads timm weights from `.safetensors`, or `.pth`/`.bin` with `weights_only=True` (no pickled code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Weights file {path} does not exist.")
    state_dict = read_weight_file(path)
    for wrapper in ("state_dict", "model", "state_dict_ema", "model_ema"):  # training checkpoints nest the weights
        if isinstance(state_dict, dict) and wrapper in state_dict and isinstance(state_dict[wrapper], dict):
            return state_dict[wrapper]
    return state_dict


__all__ = [
    "HUB_KWARGS",
    "check_hub_source",
    "naming_damaged_weights",
    "read_json",
    "read_timm_weights",
    "read_weight_file",
    "read_weights",
]
