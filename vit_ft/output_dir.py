"""The output directory of a run: the names of the files a run writes there, the typed `RunRecord` a model card is
written from, the claim a run takes on the folder, and atomic writes.

Every other module takes these names from here: the checkpoints layer (an adapter's record), training (the EMA file,
the metrics files), evaluation (robustness files) and the Hub card. So this module sits at the bottom of vit_ft's
layers and imports nothing from vit_ft.

    with claim_output_dir(args.output_dir, args.overwrite_output_dir, args.resume_from_checkpoint, args.should_save):
        ...  # one run: nothing else starts into the folder until it ends
"""

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from filelock import FileLock, Timeout
from transformers.utils import CONFIG_NAME, IMAGE_PROCESSOR_NAME, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

# A model, as transformers' save_pretrained names its files.
MODEL_CONFIG = CONFIG_NAME  # config.json
MODEL_WEIGHTS = SAFE_WEIGHTS_NAME  # model.safetensors
MODEL_WEIGHTS_INDEX = SAFE_WEIGHTS_INDEX_NAME  # beside the shards of a model saved in several files
MODEL_WEIGHT_SHARDS = "model-*-of-*.safetensors"
PROCESSOR_CONFIG = IMAGE_PROCESSOR_NAME  # preprocessor_config.json
# The files of vit_ft/model that save_pretrained copies beside a model, for `trust_remote_code=True`.
MODELING_CODE = "modeling_vit_ft.py"
REMOTE_CODE = ("configuration_vit_ft.py", MODELING_CODE)
TRAINING_ARGS = "training_args.bin"  # the Trainer's (transformers.trainer.TRAINING_ARGS_NAME)
# A LoRA adapter, as peft names its files (peft.utils.CONFIG_NAME and SAFETENSORS_WEIGHTS_NAME).
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# vit-ft's record of what the base model must be built with for the adapter to fit: the labels of the trained head
# and the config fields the run changed. peft's adapter_config.json has no room for them.
ADAPTER_RECORD = "vit_ft_adapter.json"
# `vit-ft export`'s ONNX files, in the folder where ONNX users on the Hub look for them (transformers.js, Optimum).
ONNX_FOLDER = "onnx"
ONNX_MODEL = "model.onnx"  # float32
ONNX_QUANTIZED_MODEL = "model_quantized.onnx"  # int8 weights
ONNX_MODELS = (ONNX_MODEL, ONNX_QUANTIZED_MODEL)
RECIPE = "vit_ft_recipe.yaml"  # every field of the run, resolved
ALL_RESULTS = "all_results.json"  # the Trainer's: every split's metrics, merged
TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"
ATTENTION_MAPS = "attention_maps.png"  # test images with their heat maps (`vit-ft explain`'s default method)
RECONSTRUCTIONS = "reconstructions.png"  # `vit-ft pretrain`: held-out images, masked and rebuilt
PLOTS = (TRAINING_CURVES, CONFUSION_MATRIX, ATTENTION_MAPS, RECONSTRUCTIONS)
CARD = "README.md"
EMA_WEIGHTS = "ema.safetensors"  # in each checkpoint folder
# vit-ft's record of the sha256 of each file in a checkpoint folder, written after the Trainer saved it: resuming
# checks it, which finds damage that leaves a file well formed (random bytes inside a tensor).
CHECKSUMS = "vit_ft_checksums.json"
CHECKPOINT_PREFIX = "checkpoint"  # the Trainer's checkpoint-<step> folders (transformers' PREFIX_CHECKPOINT_DIR)
CHECKPOINT_PATTERN = f"{CHECKPOINT_PREFIX}-*"
# The Trainer's files in a checkpoint, beside the model or adapter weights: a run resumes only from all of them.
# transformers.trainer names them too (TRAINER_STATE_NAME, OPTIMIZER_NAME, ...), but importing it loads the whole
# training stack, and serving an exported model reads this module; tests/test_output_dir.py checks they agree.
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATES = ("optimizer.pt", "optimizer.bin")  # optimizer.bin under FSDP
SCHEDULER_STATE = "scheduler.pt"
DEEPSPEED_STATES = "global_step*"  # a DeepSpeed run's engine checkpoint: its optimizer states, instead of optimizer.pt
RNG_STATES = "rng_state*.pth"  # rng_state.pth, or rng_state_<process>.pth from each process of a multi-process run
# `--resume_from_checkpoint` values (and a YAML `true`) that mean the newest complete checkpoint in output_dir.
LATEST_CHECKPOINT = ("latest", "true", "True", "1", "yes")
TENSORBOARD_LOGS = "runs"  # the Trainer's TensorBoard logs, with report_to: tensorboard
# Files whose names start with `_` stay on this machine: `vit-ft push` and the Trainer's own pushes leave them out.
LOCAL_ONLY_PREFIX = "_"
LOCK = f"{LOCAL_ONLY_PREFIX}vit_ft_run.lock"  # held by the run using the folder
# A file or folder being written (an export before it is complete); a killed run may leave one.
TEMPORARY_PREFIX = f"{LOCAL_ONLY_PREFIX}partial_"
# A checkpoint folder a resumed run moves out of the Trainer's sight (an incomplete one, or one newer than the resume
# point, which the Trainer's save_total_limit would keep in place of the run's fresh ones); nothing is deleted.
SET_ASIDE_PREFIX = f"{LOCAL_ONLY_PREFIX}set_aside_"  # _set_aside_checkpoint-999999


def results_file(split: str) -> str:
    """The Trainer's `save_metrics` file of `split` (train, eval, test; `run` holds the run environment)."""
    return f"{split}_results.json"


RUN_ENVIRONMENT = results_file("run")  # processes and hardware, for the card


def _scored(split: str, model_file: str | None) -> str:
    """`split`, and the stem of the ONNX file scored when it is not the export's model.onnx: `test_model_quantized`."""
    if model_file is None or Path(model_file).name == ONNX_MODEL:
        return split
    return f"{split}_{Path(model_file).stem}"


def robustness_file(split: str, onnx_file: str | None = None) -> str:
    """`vit-ft evaluate --corruptions`' results on `split`; of an export's `onnx_file` other than model.onnx."""
    return f"robustness_{_scored(split, onnx_file)}.json"


def robustness_plot(split: str, onnx_file: str | None = None) -> str:
    """Accuracy against severity, beside `robustness_file(split, onnx_file)` when several severities were scored."""
    return f"robustness_{_scored(split, onnx_file)}.png"


def eval_file(split: str, onnx_file: str | None = None) -> str:
    """`vit-ft evaluate`'s results on `split`, without corruptions; of `onnx_file` as `robustness_file`."""
    return f"eval_{_scored(split, onnx_file)}.json"


TRAIN_SUBSET = "train_subset.json"  # a few-shot run's training images (train_samples_per_class), by row


def knn_file(split: str) -> str:
    """`vit-ft knn`'s results on `split`: k-NN accuracy of the model's frozen features."""
    return f"knn_{split}.json"


# The fields every `vit-ft knn` result holds: a file without them is another's, never overwritten by knn.
KNN_FIELDS = ("model", "split", "k", "temperature", "accuracy")


def faithfulness_file(split: str) -> str:
    """`vit-ft explain --faithfulness`' results on `split`: the deletion curve of each heat-map method."""
    return f"faithfulness_{split}.json"


# The fields every faithfulness result holds: a file without them is never overwritten by `explain --faithfulness`.
FAITHFULNESS_FIELDS = ("model", "split", "examples", "deletion_auc")
# The fields every `vit-ft evaluate` result holds: a file without them is another's, never overwritten by evaluate.
EVALUATION_FIELDS = ("model", "split", "examples", "clean")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}-{step}"


# What a run leaves: a folder with any of these holds a run. README.md is not one of them: a folder of other things
# may have one, and a run always leaves more than its card.
_RUN_PATTERNS = (
    MODEL_CONFIG, MODEL_WEIGHTS, MODEL_WEIGHTS_INDEX, MODEL_WEIGHT_SHARDS, PROCESSOR_CONFIG, *REMOTE_CODE,
    TRAINING_ARGS, ADAPTER_CONFIG, ADAPTER_WEIGHTS, ADAPTER_RECORD, RECIPE, ALL_RESULTS, results_file("*"),
    robustness_file("*"), robustness_plot("*"), eval_file("*"), *PLOTS, TRAIN_SUBSET, knn_file("*"),
    faithfulness_file("*"),
)  # fmt: skip
# Removed with a run, once the folder holds one. ONNX_FOLDER too: ONNX files of the run's model (`vit-ft push
# --with_onnx`) would be another model's once the run is replaced; so would its set-aside checkpoints.
_REMOVED_WITH_A_RUN = (
    *_RUN_PATTERNS, CARD, TENSORBOARD_LOGS, ONNX_FOLDER, f"{TEMPORARY_PREFIX}*",
    f"{SET_ASIDE_PREFIX}{CHECKPOINT_PATTERN}",
)  # fmt: skip
# What a `vit-ft export` folder holds: the export, and `vit-ft evaluate`'s results on it. A folder of only these is an
# export, which `vit-ft export --overwrite` replaces as a whole.
EXPORT_PATTERNS = (
    MODEL_CONFIG, PROCESSOR_CONFIG, ONNX_FOLDER, RECIPE, eval_file("*"), robustness_file("*"), robustness_plot("*"),
    f"{TEMPORARY_PREFIX}*",
)  # fmt: skip


# Metrics. The field names of these records are the keys of the results files: the code that writes the metrics
# builds them with `as_metrics` / `as_results`, and the card reads them back with `from_metrics` / `from_results`,
# so a renamed field is renamed on both sides.

_TOP_K_KEY = "top{k}_accuracy"


def top_k_key(k: int) -> str:
    """The key of top-k accuracy: `top5_accuracy`."""
    return _TOP_K_KEY.format(k=k)


def _top_k_of(key: str) -> int | None:
    """k of a `top_k_key(k)`; None for any other key."""
    head, tail = _TOP_K_KEY.split("{k}")
    middle = key[len(head) : len(key) - len(tail)]
    return int(middle) if key.startswith(head) and key.endswith(tail) and middle.isdigit() else None


@dataclass(frozen=True)
class SplitMetrics:
    """
    One split's scores: what `ClassificationMetrics` computes, the Trainer's loss, and the images left out as
    undecodable (`ViTTrainer`). In a results file they are `<prefix>_<field>`, and top-k accuracy is
    `<prefix>_top<k>_accuracy`; without a prefix (robustness files, `compute_metrics`) just `<field>`.
    """

    accuracy: float | None = None
    top_k_accuracy: float | None = None
    k: int | None = None  # of top_k_accuracy: min(5, classes)
    f1: float | None = None  # macro F1
    loss: float | None = None
    skipped_images: int | None = None

    @property
    def has_scores(self) -> bool:
        return any(value is not None for value in (self.accuracy, self.top_k_accuracy, self.f1, self.loss))

    def as_metrics(self, prefix: str = "") -> dict[str, float | int]:
        """The set fields by their keys, `prefix`ed (`eval` makes `eval_accuracy`)."""
        metrics = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "k" and value is not None:
                name = top_k_key(self.k) if item.name == "top_k_accuracy" else item.name
                metrics[f"{prefix}_{name}" if prefix else name] = value
        return metrics

    @classmethod
    def from_metrics(cls, metrics: dict, prefix: str = "") -> "SplitMetrics":
        """The fields `as_metrics(prefix)` wrote, from `metrics`; other keys (timings) are left out."""
        start = f"{prefix}_" if prefix else ""
        values = {item.name: metrics.get(f"{start}{item.name}") for item in fields(cls)}
        for key, value in metrics.items():
            if key.startswith(start) and (k := _top_k_of(key[len(start) :])) is not None:
                values.update(top_k_accuracy=value, k=k)
        return cls(**values)


def _key(name: str):
    return field(default=None, metadata={"key": name})


@dataclass(frozen=True)
class TrainingFacts:
    """What a training run reports beside its scores, each field under the results key its metadata gives."""

    runtime: float | None = _key("train_runtime")  # seconds, the Trainer's
    epochs: float | None = _key("epoch")  # the Trainer's
    processes: int | None = _key("run_processes")
    hardware: str | None = _key("run_hardware")
    trainable_parameters: int | None = _key("train_trainable_parameters")
    total_parameters: int | None = _key("train_total_parameters")
    skipped_images: int | None = _key("train_skipped_images")  # left out of training batches as undecodable

    def as_results(self) -> dict[str, float | int | str]:
        """The set fields by their results keys."""
        return {item.metadata["key"]: getattr(self, item.name) for item in fields(self)
                if getattr(self, item.name) is not None}  # fmt: skip

    @classmethod
    def from_results(cls, results: dict) -> "TrainingFacts | None":
        """The facts in `results`; None when it holds no training (no runtime)."""
        facts = cls(**{item.name: results.get(item.metadata["key"]) for item in fields(cls)})
        return facts if facts.runtime is not None else None


@dataclass(frozen=True)
class RobustnessReport:
    """
    One `robustness_<split>.json`: scores on clean images and under each corruption at each severity scored. The file
    holds `severity` and `{corruption: scores}` for one severity, `severities` and `{corruption: {severity: scores}}`
    for several.
    """

    split: str
    examples: int
    severities: tuple[int, ...]  # each 1..5
    clean: SplitMetrics
    corruptions: dict[str, dict[int, SplitMetrics]]  # corruption -> severity -> scores
    plot: str | None = None  # the file name of its accuracy-against-severity picture, when there is one
    model_file: str | None = None  # the file scored (onnx/model_quantized.onnx); absent from older files

    @classmethod
    def from_json(cls, report: dict, plot: str | None = None) -> "RobustnessReport":
        if "severities" in report:
            severities = tuple(report["severities"])
            corruptions = {name: {int(severity): SplitMetrics.from_metrics(metrics)
                                  for severity, metrics in by_severity.items()}
                           for name, by_severity in report["corruptions"].items()}  # fmt: skip
        else:
            severities = (report["severity"],)
            corruptions = {name: {report["severity"]: SplitMetrics.from_metrics(metrics)}
                           for name, metrics in report["corruptions"].items()}  # fmt: skip
        return cls(report["split"], report["examples"], severities, SplitMetrics.from_metrics(report["clean"]),
                   corruptions, plot, report.get("model_file"))  # fmt: skip


# The results prefix of each split the Trainer scores (`metric_key_prefix` in run_training).
SPLIT_PREFIXES = {"validation": "eval", "test": "test"}


@dataclass(frozen=True)
class RunRecord:
    """What an output directory says about its run: what a model card is written from (`read_run`)."""

    recipe: dict  # the resolved recipe; empty for a directory no run wrote (`vit-ft convert`)
    splits: dict[str, SplitMetrics]  # validation, test: the splits with scores
    training: TrainingFacts | None  # None without a training run's results
    robustness: list[RobustnessReport]
    config: dict | None  # config.json of a model; an adapter has none
    adapter: dict | None  # peft's adapter_config.json; None for a model
    adapter_record: dict  # ADAPTER_RECORD of an adapter
    plots: list[str]  # the PLOTS present
    onnx_models: list[str] = field(default_factory=list)  # the ONNX_MODELS present in ONNX_FOLDER

    @property
    def id2label(self) -> dict:
        return (self.config or self.adapter_record).get("id2label") or {}

    @property
    def base_model(self) -> str | None:
        """The model this one starts from: an adapter's base, or the checkpoint a run fine-tuned."""
        if self.adapter is not None:
            return self.adapter.get("base_model_name_or_path")
        return self.recipe.get("model_name_or_path")


def check_model_dir(model_dir: str | Path) -> None:
    """Raises a ValueError unless `model_dir` holds a model (config.json) or a LoRA adapter (adapter_config.json)."""
    if not (Path(model_dir) / MODEL_CONFIG).is_file() and not (Path(model_dir) / ADAPTER_CONFIG).is_file():
        raise ValueError(f"{model_dir} holds neither {MODEL_CONFIG} (a model) nor {ADAPTER_CONFIG} (a LoRA "
                         "adapter): give the output_dir of a `vit-ft train` run.")  # fmt: skip


def read_run(model_dir: str | Path) -> RunRecord:
    """The record of the model or adapter in `model_dir` and of the run that wrote it, from the files it left."""
    check_model_dir(model_dir)
    folder = Path(model_dir)
    results = read_json(folder / ALL_RESULTS) or {}
    splits = {split: SplitMetrics.from_metrics(results, prefix) for split, prefix in SPLIT_PREFIXES.items()}
    recipe_path = folder / RECIPE
    recipe = read_yaml(recipe_path) if recipe_path.is_file() else None
    return RunRecord(
        recipe=recipe or {},
        splits={split: metrics for split, metrics in splits.items() if metrics.has_scores},
        training=TrainingFacts.from_results(results),
        robustness=[_robustness_report(path) for path in sorted(folder.glob(robustness_file("*")))],
        config=read_json(folder / MODEL_CONFIG),
        adapter=read_json(folder / ADAPTER_CONFIG),
        adapter_record=read_json(folder / ADAPTER_RECORD) or {},
        plots=[plot for plot in PLOTS if (folder / plot).is_file()],
        onnx_models=[name for name in ONNX_MODELS if (folder / ONNX_FOLDER / name).is_file()],
    )


def _robustness_report(path: Path) -> RobustnessReport:
    plot = path.with_suffix(".png")  # robustness_plot(split) beside robustness_file(split)
    return RobustnessReport.from_json(read_json(path), plot.name if plot.is_file() else None)


# Reading. A damaged file (a copy cut short, a run killed while the Trainer wrote it) is an error that names it.


class DamagedFileError(ValueError):
    """A file is empty, truncated or not of the kind its name says; the message names it and what to do."""


RESTORE_ADVICE = ("Restore it from a copy, write it again (train, download, convert or merge the model again), or use "
                  "another checkpoint.")  # fmt: skip


def read_json(path: str | Path, advice: str = RESTORE_ADVICE) -> dict | None:
    """The JSON object in `path`; None when there is no such file. A file that does not parse is a DamagedFileError."""
    path = Path(path)
    if not path.is_file():
        return None
    content = path.read_bytes()
    try:
        return json.loads(content)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedFileError(f"{path} {_json_problem(content, error)}. {advice}") from error


def _json_problem(content: bytes, error: ValueError) -> str:
    if not content.strip():
        return f"is empty ({len(content)} bytes), not JSON"
    if isinstance(error, json.JSONDecodeError):
        # The parser ran out of text (a string runs to the end only then): the end of the file is missing.
        if error.pos >= len(content.rstrip()) or error.msg.startswith("Unterminated string"):
            return f"is truncated: its JSON stops unfinished after {len(content)} bytes ({error.msg})"
        return f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    return f"is not JSON text ({error})"


def read_yaml(path: Path):
    """The YAML document in `path`; a DamagedFileError that names the file when it does not parse."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise DamagedFileError(f"{path} is not valid YAML ({reason}). {RESTORE_ADVICE}") from error


# safetensors refuses headers above 100 MB (safetensors' MAX_HEADER_SIZE): a larger length means another kind of file.
_MAX_SAFETENSORS_HEADER = 100_000_000


def safetensors_problem(path: str | Path) -> str | None:
    """
    What is wrong with the safetensors file `path`, as words that follow its name ("is truncated: ..."), or None
    when its header parses and the file holds exactly the bytes the header announces. Reads the header only.
    """
    size = Path(path).stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as file:
        # The format: an 8-byte little-endian header length, a JSON header, then the tensors' bytes.
        length = int.from_bytes(file.read(8), "little")
        header = file.read(min(length, _MAX_SAFETENSORS_HEADER))
    if size < 8 or not header.startswith(b"{") or length > _MAX_SAFETENSORS_HEADER:
        return "is not a safetensors file (it does not start with a safetensors header)"
    if len(header) < length:
        return f"is truncated: {size} bytes, fewer than its {length}-byte header"
    try:
        tensors = [entry for name, entry in json.loads(header).items() if name != "__metadata__"]
        expected = 8 + length + max((entry["data_offsets"][1] for entry in tensors), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        return "is not a safetensors file (its header does not describe tensors)"
    if size < expected:
        return f"is truncated: {size} bytes of the {expected} its header announces"
    if size > expected:
        return f"is damaged: {size} bytes, {size - expected} more than its header announces"
    return None


def check_result_file(
    output_file: Path, fields: tuple[str, ...], command: str, overwrite: bool, plot_file: Path | None = None
) -> None:
    """
    Raises a one-line FileExistsError unless `vit-ft <command>` may write its results to `output_file` (and
    `plot_file`, a picture beside them): each is new, or an earlier result of the command (a JSON object with all of
    `fields`) that `overwrite` replaces. Any other file is never replaced: a model's config.json, a JSON without the
    fields, a non-JSON file, or a plot beside no result.
    """
    is_result = _is_result(output_file, fields)
    if output_file.exists() and not is_result:
        raise FileExistsError(f"{output_file} exists and is not a result of vit-ft {command} (it lacks "
                              f"{', '.join(fields)}): it is never overwritten. Choose another --output.")  # fmt: skip
    if plot_file is not None and plot_file.exists() and not is_result:
        raise FileExistsError(f"{plot_file} exists beside no vit-ft {command} result, so it is another's file: it is "
                              "never overwritten. Choose another --output.")  # fmt: skip
    if overwrite:
        return
    for path in (output_file, plot_file):
        if path is not None and path.exists():
            raise FileExistsError(f"{path} holds the results of an earlier vit-ft {command}: pass --overwrite to "
                                  "replace them, or --output to write elsewhere.")  # fmt: skip


def _is_result(path: Path, fields: tuple[str, ...]) -> bool:
    """Whether `path` is a regular file holding a JSON object with every one of `fields`."""
    if not path.is_file():
        return False
    try:
        content = read_json(path)
    except (DamagedFileError, OSError):  # not JSON at all
        return False
    return isinstance(content, dict) and all(name in content for name in fields)


# Writing. A run killed while writing, or a reader at that moment, sees the old file or the new one, never half.


def write_text(path: str | Path, text: str) -> Path:
    """Writes `text` to `path` atomically: to a temporary file in the same folder, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f"{TEMPORARY_PREFIX}{path.name}.{secrets.token_hex(4)}"
    # os.open with 0o666 gives the file the permissions of any other the user creates (umask), as write_text would.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it the file
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: dict, indent: int = 2, sort_keys: bool = False) -> Path:
    return write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def save_results(output_dir: str | Path, split: str, metrics: dict, combined: bool = True) -> None:
    """
    The Trainer's `save_metrics`, atomically: `split`'s metrics to `<split>_results.json` and, when `combined`,
    merged into all_results.json, in the Trainer's format.
    """
    folder = Path(output_dir)
    write_json(folder / results_file(split), metrics, indent=4, sort_keys=True)
    if combined:
        merged = {**(read_json(folder / ALL_RESULTS) or {}), **metrics}
        write_json(folder / ALL_RESULTS, merged, indent=4, sort_keys=True)


# Claiming the folder for a run.


def run_files(output_dir: str | Path) -> list[str]:
    """The names of the files and checkpoint folders of a run in `output_dir`, sorted; empty when it holds none."""
    folder = Path(output_dir)
    found = {path.name for pattern in _RUN_PATTERNS for path in folder.glob(pattern)}
    return sorted(found | {path.name for path in checkpoint_folders(folder)})


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The checkpoint-<step> folders in `output_dir`, as the Trainer finds them to resume (get_last_checkpoint)."""
    start = f"{CHECKPOINT_PREFIX}-"
    return [path for path in Path(output_dir).glob(CHECKPOINT_PATTERN)
            if path.is_dir() and path.name[len(start) :].isdigit()]  # fmt: skip


def remove_run(output_dir: str | Path) -> None:
    """Removes a run's files from `output_dir`: model, adapter, results, plots, card, recipe, checkpoints, logs."""
    folder = Path(output_dir)
    removed = (path for pattern in _REMOVED_WITH_A_RUN for path in folder.glob(pattern))
    for path in [*checkpoint_folders(folder), *removed]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_output_dir(
    output_dir: str | Path, overwrite: bool = False, resume_from_checkpoint: str | None = None, saves: bool = True
) -> Iterator[None]:
    """
    Holds `output_dir` for one run, to be taken before any data or checkpoint is loaded: locks it, so that a second
    run started into it stops at once, and refuses it if it holds another run's files (`run_files`) unless
    `overwrite` (they are removed first) or `resume_from_checkpoint` (the folder is used as it is). The lock is
    released when the block ends, by an error too.

    Only the process that saves (`saves`: TrainingArguments.should_save) claims: the others would see its fresh files
    as another run's.
    """
    if not saves:
        yield
        return
    if overwrite and resume_from_checkpoint:
        raise ValueError("overwrite_output_dir with resume_from_checkpoint would remove the checkpoints the run "
                         "resumes from: set only one of them.")  # fmt: skip
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(timeout=0)  # one try: a run in progress stops this one at once
    except Timeout:
        raise OSError(f"output_dir {folder} is in use by a run that has not ended (it holds {folder / LOCK}): wait "
                      "for that run to end, or choose another output_dir.") from None  # fmt: skip
    try:
        found = run_files(folder)
        if found and not resume_from_checkpoint:
            if not overwrite:
                shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
                raise FileExistsError(
                    f"output_dir {folder} already holds a run ({shown}): pass --overwrite_output_dir true to remove "
                    "it first, choose another output_dir, or pass --resume_from_checkpoint CHECKPOINT to continue it."
                )
            remove_run(folder)
        yield
    finally:
        lock.release()
