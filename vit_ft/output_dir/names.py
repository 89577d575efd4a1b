"""
The names of the files a run writes to its output directory and reads back, and of the folders beside them: the
model's, the adapter's, the Trainer's checkpoints and results, vit-ft's own records, plots and exports.
"""

from pathlib import Path

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
# In each checkpoint folder of a streamed run: every process's position in the train stream, which resuming starts at.
STREAM_POSITIONS = "vit_ft_stream_positions.json"
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
RUN_PATTERNS = (
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    MODEL_WEIGHTS_INDEX,
    MODEL_WEIGHT_SHARDS,
    PROCESSOR_CONFIG,
    *REMOTE_CODE,
    TRAINING_ARGS,
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    ADAPTER_RECORD,
    RECIPE,
    ALL_RESULTS,
    results_file("*"),
    robustness_file("*"),
    robustness_plot("*"),
    eval_file("*"),
    *PLOTS,
    TRAIN_SUBSET,
    knn_file("*"),
    faithfulness_file("*"),
)
# Removed with a run, once the folder holds one. ONNX_FOLDER too: ONNX files of the run's model (`vit-ft push
# --with_onnx`) would be another model's once the run is replaced; so would its set-aside checkpoints.
REMOVED_WITH_A_RUN = (
    *RUN_PATTERNS,
    CARD,
    TENSORBOARD_LOGS,
    ONNX_FOLDER,
    f"{TEMPORARY_PREFIX}*",
    f"{SET_ASIDE_PREFIX}{CHECKPOINT_PATTERN}",
)
# What a `vit-ft export` folder holds: the export, and `vit-ft evaluate`'s results on it. A folder of only these is an
# export, which `vit-ft export --overwrite` replaces as a whole.
EXPORT_PATTERNS = (
    MODEL_CONFIG,
    PROCESSOR_CONFIG,
    ONNX_FOLDER,
    RECIPE,
    eval_file("*"),
    robustness_file("*"),
    robustness_plot("*"),
    f"{TEMPORARY_PREFIX}*",
)
