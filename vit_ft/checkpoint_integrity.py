"""Which checkpoint a run resumes from, and whether it can: a checkpoint is complete when every file the Trainer reads
back is there, whole, sound in content (tensors that load and are finite, states of the structure the Trainer needs)
and, for a checkpoint vit-ft saved, equal to the checksums written beside it (`write_checksums`).

    checkpoint = resolve_resume_checkpoint(output_dir, "latest")  # the newest complete checkpoint-<step>, or an error
    set_aside_checkpoints(output_dir, checkpoint, save_total_limit)  # before training: what the Trainer must not see

This module sits beside output_dir, at the bottom of vit_ft's layers: it takes its file names from there and imports
nothing else from vit_ft. Only a training run imports it (it loads torch and the Trainer's state class).
"""

import dataclasses
import fnmatch
import hashlib
import json
import logging
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import TrainerState
from transformers.trainer_pt_utils import safe_globals

from .output_dir import (
    ADAPTER_WEIGHTS,
    CHECKPOINT_PATTERN,
    CHECKPOINT_PREFIX,
    CHECKSUMS,
    DEEPSPEED_STATES,
    EMA_WEIGHTS,
    LATEST_CHECKPOINT,
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    MODEL_WEIGHTS_INDEX,
    OPTIMIZER_STATES,
    RECIPE,
    RNG_STATES,
    SCHEDULER_STATE,
    SET_ASIDE_PREFIX,
    TRAINER_STATE,
    DamagedFileError,
    checkpoint_folders,
    read_json,
    safetensors_problem,
    write_json,
)

logger = logging.getLogger(__name__)


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step in a checkpoint-<step> folder's name."""
    return int(Path(checkpoint).name[len(CHECKPOINT_PREFIX) + 1 :])


# Checksums.


def write_checksums(checkpoint: str | Path, process_index: int = 0) -> Path:
    """
    Writes CHECKSUMS into `checkpoint`: the sha256 of each file in it that the process `process_index` saved, which is
    every file of the folder but the other processes' RNG states (they may still be writing them) and subfolders
    (sharded states, which each process writes its part of).
    """
    folder = Path(checkpoint)
    own_rng_states = {"rng_state.pth", f"rng_state_{process_index}.pth"}
    names = sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file()
        and path.name != CHECKSUMS
        and (path.name in own_rng_states or not fnmatch.fnmatch(path.name, RNG_STATES))
    )
    return write_json(folder / CHECKSUMS, {"sha256": {name: _sha256(folder / name) for name in names}})


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _checksum_problems(folder: Path, found: dict[str, str]) -> dict[str, str]:
    """The files CHECKSUMS lists that are missing or changed, less those `found` already says are wrong."""
    try:
        manifest = read_json(folder / CHECKSUMS)
    except DamagedFileError:
        return {CHECKSUMS: f"{CHECKSUMS} is damaged"}
    if manifest is None:
        return {}  # a plain Trainer's checkpoint, or an older vit-ft's: the content checks alone
    digests = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(digests, dict):
        return {CHECKSUMS: f"{CHECKSUMS} is damaged (it has no sha256 object)"}
    problems = {}
    for name, digest in digests.items():
        if any(fnmatch.fnmatch(name, known) for known in found):
            continue
        path = folder / name
        if not path.is_file():
            problems[name] = f"no {name} (listed in {CHECKSUMS})"
        elif _sha256(path) != digest:
            problems[name] = f"{name} does not match its checksum in {CHECKSUMS}"
    return problems


# Content.


def _weights_problem(path: Path) -> str | None:
    """What is wrong with the safetensors file `path`: its form, then each tensor loaded, checked for NaN and inf."""
    if safetensors_problem(path):
        return f"{path.name} is damaged"
    non_finite, first = 0, None
    try:
        with safe_open(path, framework="pt") as file:
            for name in file.keys():
                tensor = file.get_tensor(name)
                count = int((~torch.isfinite(tensor)).sum()) if tensor.is_floating_point() else 0
                non_finite += count
                first = first or (name if count else None)
    except (SafetensorError, RuntimeError, ValueError) as error:
        return f"{path.name} is damaged ({' '.join(str(error).split())})"
    if non_finite:
        return f"{path.name} holds {non_finite} non-finite values (NaN or inf), the first in {first}"
    return None


def _weight_files(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """The model or adapter weights of `folder` (a model saved in shards: the shards its index lists), and problems."""
    index = folder / MODEL_WEIGHTS_INDEX
    if index.is_file() and not (folder / MODEL_WEIGHTS).is_file():
        try:
            shards = sorted(set((read_json(index) or {}).get("weight_map", {}).values()))
        except (DamagedFileError, AttributeError):
            return [], {MODEL_WEIGHTS_INDEX: f"{MODEL_WEIGHTS_INDEX} is damaged"}
        missing = {
            name: f"no {name} (listed in {MODEL_WEIGHTS_INDEX})" for name in shards if not (folder / name).is_file()
        }
        return [folder / name for name in shards if name not in missing], missing
    weights = [folder / name for name in (MODEL_WEIGHTS, ADAPTER_WEIGHTS) if (folder / name).is_file()]
    if not weights:
        return [], {MODEL_WEIGHTS: f"no {MODEL_WEIGHTS} or {ADAPTER_WEIGHTS}"}
    return weights, {}


# The fields of trainer_state.json the Trainer's resume reads and the types it needs them to have
# (Trainer._inner_training_loop, compare_trainer_and_checkpoint_args, _load_callback_state).
_TRAINER_STATE_TYPES = {
    "global_step": (int, "an integer"),
    "train_batch_size": (int, "an integer"),
    "log_history": (list, "a list"),
    "stateful_callbacks": (dict, "an object"),
}
_REQUIRED_TRAINER_STATE = ("global_step", "train_batch_size")


def _trainer_state_problem(path: Path) -> str | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {TRAINER_STATE}"
    except (OSError, ValueError):
        return f"{TRAINER_STATE} is damaged"
    if not isinstance(state, dict):
        return f"{TRAINER_STATE} holds a JSON {type(state).__name__}, not an object"
    known = {item.name for item in dataclasses.fields(TrainerState)}
    unknown = sorted(set(state) - known)
    if unknown:
        return f"{TRAINER_STATE} has fields the Trainer does not know ({', '.join(unknown)})"
    missing = [name for name in _REQUIRED_TRAINER_STATE if state.get(name) is None]
    if missing:
        return f"{TRAINER_STATE} has no {' or '.join(missing)}"
    for name, (kind, words) in _TRAINER_STATE_TYPES.items():
        value = state.get(name)
        # bool is an int to Python, never a step count to the Trainer.
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{TRAINER_STATE} has {name} {value!r}, not {words}"
    if state["global_step"] < 0 or state["train_batch_size"] < 1:
        return (
            f"{TRAINER_STATE} has global_step {state['global_step']} and train_batch_size "
            f"{state['train_batch_size']}: a step count and a batch size cannot be negative or zero"
        )
    return None


def _load_torch_state(path: Path) -> tuple[object, str | None]:
    """
    The object torch saved in `path`, loaded as the Trainer loads it (weights only, numpy's RNG types allowed), and
    None; or None and what is wrong. torch.save writes a zip archive: a file cut short lacks its directory, and the
    archive's CRCs find changed bytes that torch.load reads without a word.
    """
    if not zipfile.is_zipfile(path):
        return None, f"{path.name} is damaged"
    with zipfile.ZipFile(path) as archive:
        changed = archive.testzip()
    if changed is not None:
        return None, f"{path.name} is damaged (its part {changed} fails the archive's CRC check)"
    try:
        with safe_globals():
            return torch.load(path, weights_only=True, map_location="cpu", mmap=True), None
    except Exception as error:  # torch raises many kinds for a damaged archive (UnpicklingError, RuntimeError, ...)
        return None, f"{path.name} does not load ({' '.join(str(error).split())[:200]})"


def _optimizer_problem(path: Path) -> str | None:
    """What keeps `torch.optim.Optimizer.load_state_dict` from taking the state in `path`, or makes it non-finite."""
    state, problem = _load_torch_state(path)
    if problem:
        return problem
    if not isinstance(state, dict):
        return f"{path.name} holds a {type(state).__name__}, not an optimizer state"
    groups = state.get("param_groups")
    if not isinstance(groups, list) or not groups:
        return f"{path.name} has no param_groups"
    if not all(isinstance(group, dict) and isinstance(group.get("params"), list) for group in groups):
        return f"{path.name} has param_groups without their params"
    if not isinstance(state.get("state"), dict):
        return f"{path.name} has no per-parameter state"
    non_finite, first = 0, None
    for parameter, values in state["state"].items():
        for name, value in values.items() if isinstance(values, dict) else ():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                count = int((~torch.isfinite(value)).sum())
                non_finite += count
                first = first or (f"{name} of parameter {parameter}" if count else None)
    if non_finite:
        return f"{path.name} holds {non_finite} non-finite values (NaN or inf), the first in {first}"
    return None


def _scheduler_problem(path: Path) -> str | None:
    state, problem = _load_torch_state(path)
    if problem is None and not isinstance(state, dict):
        return f"{path.name} holds a {type(state).__name__}, not a scheduler state"
    return problem


# What Trainer._load_rng_state reads from each process's RNG file.
_RNG_KEYS = ("python", "numpy", "cpu")


def _rng_problem(path: Path) -> str | None:
    state, problem = _load_torch_state(path)
    if problem is None and not (isinstance(state, dict) and all(key in state for key in _RNG_KEYS)):
        return f"{path.name} has no {', '.join(_RNG_KEYS)} random states"
    return problem


def checkpoint_problems(checkpoint: str | Path) -> list[str]:
    """
    What keeps a run from resuming from `checkpoint` as it was saved: each missing or damaged file, in words that
    name it; empty when it is complete. Complete: model or adapter weights (and EMA weights when present) whose tensors
    load and are finite; a trainer_state.json with the fields the Trainer reads; optimizer, scheduler and RNG states
    that load, of the structure the Trainer needs, the optimizer's finite; and every file listed in CHECKSUMS (when
    there is one) unchanged. Reads every file once or twice: see docs/training.md for what it costs.
    """
    folder = Path(checkpoint)
    weights, problems = _weight_files(folder)  # file (or pattern of files) -> what is wrong with it
    if (folder / EMA_WEIGHTS).is_file():
        weights.append(folder / EMA_WEIGHTS)
    for path in weights:
        if (problem := _weights_problem(path)) is not None:
            problems[path.name] = problem
    if (problem := _trainer_state_problem(folder / TRAINER_STATE)) is not None:
        problems[TRAINER_STATE] = problem
    # A DeepSpeed run's engine keeps the optimizer states in its own global_step* folder, and checks them itself.
    if not any(path.is_dir() for path in folder.glob(DEEPSPEED_STATES)):
        optimizers = [folder / name for name in OPTIMIZER_STATES if (folder / name).is_file()]
        if not optimizers:
            problems[OPTIMIZER_STATES[0]] = f"no {OPTIMIZER_STATES[0]}"
        for path in optimizers:
            if (problem := _optimizer_problem(path)) is not None:
                problems[path.name] = problem
    scheduler = folder / SCHEDULER_STATE
    problem = _scheduler_problem(scheduler) if scheduler.is_file() else f"no {SCHEDULER_STATE}"
    if problem is not None:
        problems[SCHEDULER_STATE] = problem
    rng_states = sorted(folder.glob(RNG_STATES))
    if not rng_states:
        problems[RNG_STATES] = f"no {RNG_STATES}"
    for path in rng_states:
        if (problem := _rng_problem(path)) is not None:
            problems[path.name] = problem
    problems.update(_checksum_problems(folder, problems))
    return list(problems.values())


# Choosing the checkpoint.


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """
    The newest complete checkpoint-<step> folder in `output_dir` (see `checkpoint_problems`); None without one. Each
    newer incomplete one is skipped with a warning that says what is wrong with it.
    """
    for checkpoint in sorted(checkpoint_folders(output_dir), key=checkpoint_step, reverse=True):
        problems = checkpoint_problems(checkpoint)
        if not problems:
            return checkpoint
        logger.warning(f"Skipping {checkpoint}: it is incomplete ({'; '.join(problems)}).")
    return None


def resolve_resume_checkpoint(output_dir: str | Path, resume_from_checkpoint: str | bool | None) -> str | None:
    """
    The checkpoint a run resumes from: `latest` (or true, 1, yes) is the newest complete one in `output_dir`; a path
    is kept if it holds a complete checkpoint. Raises a one-line ValueError for no complete checkpoint or for an
    incomplete one, naming the newest complete one.
    """
    if resume_from_checkpoint is None or resume_from_checkpoint is False or resume_from_checkpoint == "":
        return None
    if resume_from_checkpoint is True or resume_from_checkpoint in LATEST_CHECKPOINT:
        latest = latest_checkpoint(output_dir)
        if latest is None:
            raise ValueError(
                f"resume_from_checkpoint {resume_from_checkpoint}: {output_dir} holds no complete "
                f"{CHECKPOINT_PATTERN} folder to resume from: start without --resume_from_checkpoint, or "
                "give the output_dir that holds the run's checkpoints."
            )
        return str(latest)
    if not Path(resume_from_checkpoint).is_dir():
        raise ValueError(
            f"resume_from_checkpoint {resume_from_checkpoint} is not a folder: give a checkpoint-<step> "
            "folder of a run, or `latest` for the newest complete one in output_dir."
        )
    problems = checkpoint_problems(resume_from_checkpoint)
    if problems:
        latest = latest_checkpoint(output_dir)
        instead = f"the newest complete one is {latest}" if latest else f"{output_dir} holds no complete one"
        raise ValueError(
            f"resume_from_checkpoint {resume_from_checkpoint} is incomplete ({'; '.join(problems)}): {instead}."
        )
    return str(resume_from_checkpoint)


def set_aside_checkpoints(
    output_dir: str | Path, resumed_from: str | Path, save_total_limit: int | None
) -> list[Path]:
    """
    Before a run resumes from `resumed_from`, moves out of the Trainer's sight the checkpoint-<step> folders of
    `output_dir` it must not see: those newer than the resume point (the Trainer would write the run's new
    checkpoints among them, and with `save_total_limit` delete the new ones first) and, with `save_total_limit`, the
    incomplete ones (counted, kept as the newest, while complete ones are deleted). Each is renamed
    SET_ASIDE_PREFIX + its name, nothing is deleted, and one warning names them. Returns where they went.
    """
    resumed_from = Path(resumed_from).resolve()
    step = json.loads((resumed_from / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"]
    moved = {}
    for checkpoint in sorted(checkpoint_folders(output_dir), key=checkpoint_step):
        if checkpoint.resolve() == resumed_from:
            continue
        if checkpoint_step(checkpoint) > step:
            why = f"newer than step {step}"
        elif save_total_limit and (problems := checkpoint_problems(checkpoint)):
            why = f"incomplete: {'; '.join(problems)}"
        else:
            continue
        target = _free_name(checkpoint.with_name(f"{SET_ASIDE_PREFIX}{checkpoint.name}"))
        checkpoint.rename(target)
        moved[target] = f"{checkpoint.name} ({why}) to {target.name}"
    if moved:
        logger.warning(
            f"Resuming from {resumed_from.name}: set aside in {output_dir}, so that the Trainer neither "
            f"saves among nor deletes by them: {', '.join(moved.values())}."
        )
    return list(moved)


def _free_name(path: Path) -> Path:
    """`path`, or `path.1`, `path.2`, ... : the first that does not exist."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


# The model a resumed run builds, against the checkpoint's.

# Fields a saved config.json writes that do not describe the architecture.
_BOOKKEEPING_FIELDS = {
    "transformers_version",
    "architectures",
    "auto_map",
    "_name_or_path",
    "dtype",
    "torch_dtype",
    "problem_type",
    "id2label",
    "label2id",
}


def check_checkpoint_fits(checkpoint: str | Path, model: torch.nn.Module) -> None:
    """
    Raises a one-line ValueError when the weights in `checkpoint`'s model.safetensors have other shapes than
    `model`'s (a run resumed with other `model_overrides`), naming the config fields that differ, with both values.
    An adapter's checkpoint or a sharded one is left to the Trainer's load.
    """
    folder = Path(checkpoint)
    if not (folder / MODEL_WEIGHTS).is_file():
        return
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    with safe_open(folder / MODEL_WEIGHTS, framework="pt") as file:
        mismatched = [
            (name, tuple(file.get_slice(name).get_shape()), shapes[name])
            for name in file.keys()
            if name in shapes and tuple(file.get_slice(name).get_shape()) != shapes[name]
        ]
    if not mismatched:
        return
    saved, built = read_json(folder / MODEL_CONFIG) or {}, model.config.to_dict()
    saved["num_labels"], built["num_labels"] = len(saved.get("id2label") or {}), len(built.get("id2label") or {})
    differ = [
        name
        for name in sorted(saved)
        if name in built and name not in _BOOKKEEPING_FIELDS and saved[name] != built[name]
    ]
    if differ:
        found = ", ".join(f"{name} {saved[name]!r}" for name in differ)
        wanted = ", ".join(f"{name} {built[name]!r}" for name in differ)
        what = f"{folder / MODEL_CONFIG} has {found}; the recipe builds {wanted}"
    else:
        name, saved_shape, built_shape = mismatched[0]
        what = (
            f"{folder / MODEL_WEIGHTS} holds {name} of shape {list(saved_shape)}; the recipe builds "
            f"{list(built_shape)}"
        )
    raise ValueError(f"{what}: resume with the run's model_overrides (saved in its {RECIPE}), or start a new run.")
