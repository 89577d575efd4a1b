"""The `vit-ft` command as a person meets it, run in fresh processes: damaged files and wrong paths end in one line
that names them (and touch no file), the Hub's absence is said at once, the help is grouped, piped logs are plain."""

import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from huggingface_hub import constants
from peft import LoraConfig, get_peft_model
from PIL import Image

import vit_ft
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor, load_model
from vit_ft.cli import release_process_group
from vit_ft.data.arguments import DataArguments
from vit_ft.evaluation.evaluate import evaluate_model
from vit_ft.output_dir import RECIPE

from .conftest import tiny_config

REPO = Path(vit_ft.__file__).resolve().parent.parent
DIGITS = {i: str(i) for i in range(10)}
RESTORE = (
    "Restore it from a copy, write it again (train, download, convert or merge the model again), or use "
    "another checkpoint."
)
WEIGHTS = "Download or save the weights again, or use another checkpoint."


def vit_ft_cli(*args, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Runs `python -m vit_ft.cli ARGS` in `cwd`, offline unless `env` says otherwise, with stdout and stderr piped."""
    inherited = {name: value for name, value in os.environ.items() if name != "VIT_FT_DEBUG"}
    environment = {**inherited, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "vit_ft.cli", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


def files(folder: Path) -> dict[str, str]:
    """Every file under `folder` and the hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def assert_one_line(result: subprocess.CompletedProcess, message: str, code: int = 1) -> None:
    """The command exited with `code` and ended with the line `message`, without a traceback."""
    assert result.returncode == code, result.stderr
    # Libraries' own warnings (a deprecation in peft) may come before it.
    assert result.stderr.endswith(f"\n{message}\n") or result.stderr == f"{message}\n", result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A tiny vit_ft model directory with the digits' labels and an image processor."""
    folder = tmp_path_factory.mktemp("saved") / "model"
    labels = {"id2label": DIGITS, "label2id": {name: i for i, name in DIGITS.items()}}
    ViTForImageClassification(tiny_config(num_labels=10, **labels)).save_pretrained(folder)
    default_processor(32).save_pretrained(folder)
    return folder


@pytest.fixture
def workdir(tmp_path, saved_model) -> Path:
    """A working directory with a copy of the model (`model/`) and an image (`digit.png`)."""
    shutil.copytree(saved_model, tmp_path / "model")
    Image.new("L", (8, 8), 128).save(tmp_path / "digit.png")
    return tmp_path


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


# Damaged files: each names the file, what is wrong with it and what to do, in one line; nothing is changed.


def _truncated_weights(workdir: Path, command: str) -> tuple[list, str]:
    weights = workdir / "model" / "model.safetensors"
    full = weights.stat().st_size
    _truncate(weights, full // 2)
    args = (
        ["predict", "--model", "model", "digit.png"]
        if command == "predict"
        else ["evaluate", "--model", "model", "--dataset_name", "digits"]
    )
    return (
        args,
        f"model/model.safetensors is truncated: {full // 2} bytes of the {full} its header announces. {WEIGHTS}",
    )


def _partial_checkpoint(workdir: Path) -> tuple[list, str]:
    # A checkpoint the Trainer was writing when the run was killed.
    (workdir / "model").rename(workdir / "checkpoint-40")
    (workdir / "checkpoint-40" / "preprocessor_config.json").write_bytes(b"")
    args = ["evaluate", "--model", "checkpoint-40", "--dataset_name", "digits"]
    return args, f"checkpoint-40/preprocessor_config.json is empty (0 bytes), not JSON. {RESTORE}"


def _truncated_config(workdir: Path) -> tuple[list, str]:
    _truncate(workdir / "model" / "config.json", 40)
    return (
        ["predict", "--model", "model", "digit.png"],
        "model/config.json is truncated: its JSON stops unfinished after 40 bytes (Unterminated string starting "
        f"at). {RESTORE}",
    )


def _refused_pickle(workdir: Path) -> tuple[list, str]:
    torch.save({"cls_token": torch.zeros(1, 1, 192), "where": pathlib.PurePosixPath("x")}, workdir / "vit.pth")
    args = [
        "convert",
        "--from",
        "timm",
        "--timm_model",
        "vit_tiny_patch16_224",
        "--weights",
        "vit.pth",
        "--output",
        "converted",
    ]
    return args, (
        "vit.pth was refused by torch.load(weights_only=True): it pickles pathlib.PurePosixPath, which is "
        "not a tensor, and unpickling it could run code. If you trust the file, load it with "
        "weights_only=False, save its tensors with safetensors.torch.save_file and pass that file instead."
    )


def _not_safetensors(workdir: Path) -> tuple[list, str]:
    (workdir / "vit.safetensors").write_text('{"this": "is JSON"}')
    args = [
        "convert",
        "--from",
        "timm",
        "--timm_model",
        "vit_tiny_patch16_224",
        "--weights",
        "vit.safetensors",
        "--output",
        "converted",
    ]
    return args, f"vit.safetensors is not a safetensors file (it does not start with a safetensors header). {WEIGHTS}"


def _damaged_adapter(workdir: Path) -> tuple[list, str]:
    model = ViTForImageClassification.from_pretrained(workdir / "model")
    model.name_or_path = str(workdir / "model")  # the base the adapter names
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"])
    get_peft_model(model, config).save_pretrained(workdir / "adapter")
    weights = workdir / "adapter" / "adapter_model.safetensors"
    full = weights.stat().st_size
    _truncate(weights, full - 10)
    args = ["merge-lora", "--adapter", "adapter", "--output", "merged"]
    return (
        args,
        f"adapter/adapter_model.safetensors is truncated: {full - 10} bytes of the {full} its header "
        f"announces. {WEIGHTS}",
    )


def _truncated_results(workdir: Path) -> tuple[list, str]:
    (workdir / "model" / "all_results.json").write_text('{\n    "eval_accuracy": 0.9,\n    "eval_loss": 0.31')
    return (
        ["push", "--model", "model", "--repo_id", "tester/tiny"],
        "model/all_results.json is truncated: its JSON stops unfinished after 49 bytes (Expecting ',' "
        f"delimiter). {RESTORE}",
    )


def _malformed_recipe(workdir: Path) -> tuple[list, str]:
    (workdir / "recipe.yaml").write_text("dataset_name: digits\npreset: [vit_tiny\n")
    return (
        ["train", "recipe.yaml"],
        'Recipe recipe.yaml is not valid YAML: while parsing a flow sequence in "<unicode string>", line 2, '
        "column 9: preset: [vit_tiny ^ expected ',' or ']', but got '<stream end>' in \"<unicode string>\", line "
        "3, column 1: ^",
    )


DAMAGED = {
    "predict, truncated model.safetensors": lambda workdir: _truncated_weights(workdir, "predict"),
    "evaluate, truncated model.safetensors": lambda workdir: _truncated_weights(workdir, "evaluate"),
    "evaluate, partial checkpoint": _partial_checkpoint,
    "predict, truncated config.json": _truncated_config,
    "convert, refused pickle": _refused_pickle,
    "convert, not a safetensors file": _not_safetensors,
    "merge-lora, truncated adapter weights": _damaged_adapter,
    "push, truncated all_results.json": _truncated_results,
    "train, malformed recipe": _malformed_recipe,
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_file_is_one_line_that_names_it_and_changes_nothing(workdir, case):
    args, message = DAMAGED[case](workdir)
    before = files(workdir)
    result = vit_ft_cli(*args, cwd=workdir, HF_TOKEN="hf_fake_token_for_tests")
    assert_one_line(result, f"vit-ft {args[0]}: {message}")
    assert files(workdir) == before


@pytest.mark.parametrize("debug", [["--debug"], ["VIT_FT_DEBUG", "1"]], ids=["--debug", "VIT_FT_DEBUG=1"])
def test_debug_shows_the_traceback(workdir, debug):
    args, message = _truncated_weights(workdir, "predict")
    flags, env = (debug, {}) if debug == ["--debug"] else ([], {debug[0]: debug[1]})
    result = vit_ft_cli(*flags, *args, cwd=workdir, **env)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr and "SafetensorError" in result.stderr
    assert result.stderr.endswith(f"vit_ft.output_dir.reading.DamagedFileError: {message}\n")


# Local paths and Hub ids


def test_a_path_that_does_not_exist_fails_at_once_without_the_hub(workdir):
    # `outputs/` is a folder here, so `outputs/digits` is a path: the README's example before training.
    (workdir / "outputs").mkdir()
    result = vit_ft_cli(
        "evaluate",
        "--model",
        "outputs/digits",
        "--dataset_name",
        "digits",
        cwd=workdir,
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
    )
    assert_one_line(
        result,
        f"vit-ft evaluate: model='outputs/digits' is not a directory: {workdir}/outputs/digits "
        "does not exist (outputs/ is a folder here, so this is a path, not a Hub id). Train or "
        "save the model there first, or correct the path.",
    )


def test_a_teacher_path_that_does_not_exist_stops_the_recipe(workdir):
    (workdir / "recipe.yaml").write_text(
        "dataset_name: digits\npreset: vit_tiny_patch16_224\nuse_cpu: true\n"
        "teacher_model_name_or_path: ./teachers/big\n"
    )
    before = files(workdir)
    result = vit_ft_cli("train", "recipe.yaml", "--output_dir", "run", cwd=workdir)
    assert_one_line(
        result,
        f"vit-ft train: teacher_model_name_or_path='./teachers/big' is not a directory: "
        f"{workdir}/teachers/big does not exist. Train or save the model there first, or correct "
        "the path.",
    )
    assert files(workdir) == before and not (workdir / "run").exists()


def _closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_hub_is_said_in_one_line(workdir):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = vit_ft_cli(
        "predict",
        "--model",
        "vit-ft-tests/no-such-model",
        "digit.png",
        cwd=workdir,
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=endpoint,
        HF_HUB_CACHE=str(workdir / "cache"),
    )
    assert_one_line(
        result,
        f"vit-ft predict: 'vit-ft-tests/no-such-model' is not a local folder, so it was looked up "
        f"on the Hub ({endpoint}), which could not be reached ([Errno 111] Connection refused). "
        "Check the network connection and HF_ENDPOINT, or give a local folder.",
    )
    offline = vit_ft_cli(
        "predict",
        "--model",
        "vit-ft-tests/no-such-model",
        "digit.png",
        cwd=workdir,
        HF_HUB_CACHE=str(workdir / "cache"),
    )
    assert_one_line(
        offline,
        "vit-ft predict: 'vit-ft-tests/no-such-model' is not a local folder, and HF_HUB_OFFLINE "
        f"is set, so it was looked up in the Hub cache ({workdir}/cache), which does not hold "
        "it: download it while online, or give a local folder.",
    )


def test_an_unreachable_hub_fails_within_seconds(monkeypatch, tmp_path):
    # huggingface_hub alone retries for about 23 s per file before it gives up.
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(OSError, match="could not be reached"):
        load_model("vit-ft-tests/no-such-model")
    assert time.monotonic() - start < 10


def test_a_single_class_folder_names_the_class(workdir):
    (workdir / "test" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(workdir / "test" / "cat" / "a.png")
    result = vit_ft_cli("evaluate", "--model", "model", "--test_dir", "test", cwd=workdir)
    assert_one_line(
        result,
        "vit-ft evaluate: test_dir='test': one class only, 'cat'; a classifier needs at least two "
        "classes, one sub-folder of images per class.",
    )


# Help


def test_train_help_is_grouped_with_vit_fts_fields_first(tmp_path):
    short = vit_ft_cli("train", "--help", cwd=tmp_path)
    assert short.returncode == 0 and short.stderr == ""
    text = short.stdout
    assert text.startswith("usage: vit-ft train RECIPE.yaml [--field value ...]\n")
    titles = [
        "model (",
        "data (",
        "augmentation (",
        "lora (",
        "distillation (",
        "hub (",
        "training (vit-ft's own",
        "training (transformers' TrainingArguments)",
    ]
    positions = [text.index(f"\n{title}") for title in titles]
    assert positions == sorted(positions)
    assert positions[-2] < text.index("--layer_decay") < positions[-1] < text.index("--learning_rate")
    assert "--adam_beta1" not in text and "--no_horizontal_flip" not in text and "--model-name-or-path" not in text
    assert text.rstrip().endswith("more fields of transformers' TrainingArguments: vit-ft train --help_all.")
    with_recipe = vit_ft_cli("train", "recipes/full_finetune/digits.yaml", "--help", cwd=REPO)
    assert (with_recipe.returncode, with_recipe.stdout) == (0, text)
    full = vit_ft_cli("train", "--help_all", cwd=tmp_path)
    assert full.returncode == 0 and "--adam_beta1" in full.stdout and full.stdout.count("\n") > text.count("\n")


def test_train_without_a_recipe_is_one_line_of_usage(tmp_path):
    result = vit_ft_cli("train", cwd=tmp_path)
    assert_one_line(
        result, "usage: vit-ft train RECIPE.yaml [--field value ...] (vit-ft train --help lists the fields)", code=2
    )
    assert result.stdout == ""


# Piped output


@pytest.mark.slow
def test_a_piped_run_logs_plain_lines_and_ends_with_a_metrics_table(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "preset: vit_tiny_patch16_224\nmodel_overrides: {image_size: 8, patch_size: 2, hidden_size: 16, "
        "num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32}\ndataset_name: digits\n"
        "max_train_samples: 64\nmax_eval_samples: 32\nper_device_train_batch_size: 16\nmax_steps: 4\n"
        "logging_steps: 2\neval_strategy: steps\neval_steps: 2\nsave_strategy: steps\nsave_steps: 2\n"
        "horizontal_flip: false\nreport_to: none\nuse_cpu: true\noutput_dir: run\n"
    )
    result = vit_ft_cli("train", recipe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\x1b[" not in output and "\r" not in output  # no progress bar redraws
    assert "Writing model shards" not in output and "Loading weights" not in output
    assert sum(line.startswith("{'loss': ") for line in output.splitlines()) == 2  # steps 2 and 4
    table = result.stdout[result.stdout.index("Final metrics (run):\n") :].splitlines()[1:]
    assert table[0].split() == ["train", "validation", "test"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    results = json.loads((tmp_path / "run" / "all_results.json").read_text())
    assert rows["accuracy"] == ["-", f"{results['eval_accuracy']:.4f}", f"{results['test_accuracy']:.4f}"]
    assert rows["loss"] == [f"{results[key]:.4f}" for key in ("train_loss", "eval_loss", "test_loss")]
    assert list(rows) == ["accuracy", "top5_accuracy", "f1", "loss", "skipped_images", "runtime"]


def test_release_process_group_ends_the_group_a_run_ran_in(tmp_path):
    # `vit-ft train` calls it at the end of a run: a gloo group left to the interpreter's shutdown once aborted a
    # finished process of a two-process launch.
    release_process_group()  # no group: nothing to do
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    assert dist.is_initialized()
    release_process_group()
    assert not dist.is_initialized()


# Foreign code: never a prompt; refused in one line unless --trust_remote_code


_FOREIGN_CODE = """
import pathlib
pathlib.Path("ran_foreign_code").write_text("the folder's code ran")
from transformers import ViTImageProcessor, ViTConfig


class ForeignImageProcessor(ViTImageProcessor):
    pass


class ForeignConfig(ViTConfig):
    pass
"""


def _ask_for_foreign_code(model: Path, filename: str) -> None:
    """Makes `model/filename` name a class of model/foreign.py in its auto_map, as transformers' remote code does."""
    (model / "foreign.py").write_text(_FOREIGN_CODE)
    path = model / filename
    content = json.loads(path.read_text())
    if filename == "preprocessor_config.json":
        content.pop("image_processor_type")  # transformers then asks whether to run the auto_map's class
        content["auto_map"] = {"AutoImageProcessor": "foreign.ForeignImageProcessor"}
    else:
        content["auto_map"] = {**content["auto_map"], "AutoImageProcessor": "foreign.ForeignImageProcessor"}
    path.write_text(json.dumps(content))


def _cli_with_stdin(args: list, cwd: Path, stdin: str | None) -> subprocess.CompletedProcess:
    """`vit_ft_cli` with stdin closed (None) or a pipe that answers `stdin`."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    environment.pop("VIT_FT_DEBUG", None)
    command = [sys.executable, "-m", "vit_ft.cli", *map(str, args)]
    if stdin is None:
        return subprocess.run(
            command,
            cwd=cwd,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=lambda: os.close(0),
        )
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=120, input=stdin)


@pytest.mark.slow
@pytest.mark.parametrize("stdin", [None, "y\n"], ids=["stdin closed", "stdin answers y"])
@pytest.mark.parametrize("filename", ["preprocessor_config.json", "config.json"])
def test_foreign_code_is_refused_in_one_line_without_a_prompt(workdir, filename, stdin):
    # vit_ft's own remote code (config.json's auto_map) is no foreign code: the model loads without the flag.
    assert "AutoModelForImageClassification" in json.loads((workdir / "model" / "config.json").read_text())["auto_map"]
    _ask_for_foreign_code(workdir / "model", filename)
    result = _cli_with_stdin(["predict", "--model", "model", "digit.png"], workdir, stdin)
    assert result.stdout == ""  # no prompt, no half a JSON line
    assert_one_line(
        result,
        f"vit-ft predict: model/{filename} asks to run code that is not vit_ft's "
        "(foreign.ForeignImageProcessor), which vit-ft does not run: pass --trust_remote_code "
        "(trust_remote_code=True in Python) to run it, only if you trust that code.",
    )
    assert not (workdir / "ran_foreign_code").exists()


@pytest.mark.slow
def test_trust_remote_code_runs_the_folders_code(workdir):
    _ask_for_foreign_code(workdir / "model", "preprocessor_config.json")
    result = vit_ft_cli("predict", "--model", "model", "digit.png", "--trust_remote_code", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["image"] == "digit.png"
    assert (workdir / "ran_foreign_code").read_text() == "the folder's code ran"


@pytest.mark.slow
def test_export_refuses_foreign_code_unless_trusted(workdir):
    _ask_for_foreign_code(workdir / "model", "preprocessor_config.json")
    result = vit_ft_cli("export", "--model", "model", "--output", "export", cwd=workdir)
    assert_one_line(
        result,
        "vit-ft export: model/preprocessor_config.json asks to run code that is not vit_ft's "
        "(foreign.ForeignImageProcessor), which vit-ft does not run: pass --trust_remote_code "
        "(trust_remote_code=True in Python) to run it, only if you trust that code.",
    )
    assert not (workdir / "ran_foreign_code").exists() and not (workdir / "export").exists()
    result = vit_ft_cli("export", "--model", "model", "--output", "export", "--trust_remote_code", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "export" / "onnx" / "model.onnx").is_file()


# Images that are no files, data that does not exist


def test_a_fifo_as_an_image_is_refused_at_once(workdir):
    os.mkfifo(workdir / "pipe.png")
    result = vit_ft_cli("predict", "--model", "model", "digit.png", "pipe.png", cwd=workdir)  # a hang: timeout
    assert_one_line(
        result,
        "vit-ft predict: Cannot read image pipe.png: it is a FIFO (named pipe), not a regular "
        "file. Give the path of an image file.",
    )
    (workdir / "folder.png").mkdir()
    result = vit_ft_cli("explain", "--model", "model", "folder.png", "--output", "maps", cwd=workdir)
    assert_one_line(
        result,
        "vit-ft explain: Cannot read image folder.png: it is a folder, not a regular file. Give "
        "the path of an image file.",
    )


def test_a_mistyped_dataset_name_fails_within_seconds_and_suggests_the_built_in_one(workdir):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    result = vit_ft_cli(
        "evaluate",
        "--model",
        "model",
        "--dataset_name",
        "digts",
        cwd=workdir,
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT=endpoint,
        HF_HOME=str(workdir / "hf"),
    )
    assert time.monotonic() - start < 20  # the interpreter, the model and one refused connection; datasets took 29 s
    assert_one_line(
        result,
        "vit-ft evaluate: dataset_name='digts' is not a built-in dataset (digits, lfw_faces) "
        f"nor a local folder, so it was looked up on the Hub ({endpoint}), which could not be "
        "reached ([Errno 111] Connection refused). Check the network connection and HF_ENDPOINT, "
        "or set HF_HUB_OFFLINE=1 to use the datasets cache. Did you mean 'digits' (built in, "
        "offline)?",
    )
    offline = vit_ft_cli(
        "evaluate", "--model", "model", "--dataset_name", "digts", cwd=workdir, HF_HOME=str(workdir / "hf")
    )
    assert_one_line(
        offline,
        "vit-ft evaluate: dataset_name='digts' could not be loaded (Couldn't reach 'digts' on "
        "the Hub (OfflineModeIsEnabled)): check the name, or the network and HF_HUB_OFFLINE. Did "
        "you mean 'digits' (built in, offline)?",
    )


def test_lfw_faces_without_scikit_image_is_one_line(workdir):
    # `python -m` puts the working directory first on sys.path: this skimage hides the installed one.
    (workdir / "skimage").mkdir()
    (workdir / "skimage" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = vit_ft_cli("evaluate", "--model", "model", "--dataset_name", "lfw_faces", cwd=workdir)
    assert_one_line(
        result,
        "vit-ft evaluate: dataset_name='lfw_faces' needs scikit-image, which is not installed: "
        "pip install scikit-image (or pip install 'vit-ft[small-data]').",
    )


# Evaluate on the run's own validation split


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory) -> Path:
    """A tiny `vit-ft train` run on digits whose validation split is 10% of train, carved with seed 0."""
    folder = tmp_path_factory.mktemp("validated")
    (folder / "tiny.yaml").write_text(
        "preset: vit_tiny_patch16_224\nmodel_overrides: {image_size: 8, patch_size: 2, hidden_size: 16, "
        "num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, initializer_range: 0.5}\n"
        "dataset_name: digits\ntrain_val_split: 0.1\nseed: 0\nmax_train_samples: 64\nmax_eval_samples: 100\n"
        "per_device_train_batch_size: 16\nmax_steps: 2\nhorizontal_flip: false\nreport_to: none\nuse_cpu: true\n"
        "output_dir: run\n"
    )
    result = vit_ft_cli("train", "tiny.yaml", cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder / "run"


@pytest.mark.slow
def test_evaluate_on_validation_scores_the_runs_own_validation_images(validated_run, tmp_path):
    result = vit_ft_cli(
        "evaluate",
        "--model",
        validated_run,
        "--dataset_name",
        "digits",
        "--split",
        "validation",
        "--output",
        tmp_path / "validation.json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    run = json.loads((validated_run / "all_results.json").read_text())
    # The run's 100 first images of its 10% share (144 of 1,437), not another carving's 216 (15%, seed 42).
    assert scores["examples"] == 100
    carving = {"train_val_split": 0.1, "seed": 0, "max_train_samples": 64, "max_eval_samples": 100}
    assert scores["carved_from_train"] == carving
    assert scores["clean"]["accuracy"] == run["eval_accuracy"]
    assert scores["clean"]["loss"] == pytest.approx(run["eval_loss"], rel=1e-5)
    # --split train: the 64 images the run trained on, carved and capped as it did.
    result = vit_ft_cli(
        "evaluate",
        "--model",
        validated_run,
        "--dataset_name",
        "digits",
        "--split",
        "train",
        "--output",
        tmp_path / "train.json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["examples"] == 64
    assert json.loads(result.stdout)["carved_from_train"] == carving


def test_evaluate_on_validation_says_when_it_cannot_know_the_runs_split(validated_run, tmp_path):
    data = DataArguments(dataset_name="digits")
    without_recipe = Path(shutil.copytree(validated_run, tmp_path / "copied", ignore=shutil.ignore_patterns(RECIPE)))
    with pytest.raises(ValueError) as error:
        evaluate_model(str(without_recipe), data, split="validation")
    assert str(error.value) == (
        f"Cannot know the run's validation split: the data has no validation split of its own, so the run carved it "
        f"from train, and {without_recipe} has no {RECIPE} that records how. Evaluate on --split test, or copy the "
        f"run's {RECIPE} into {without_recipe}."
    )
    other_data = Path(shutil.copytree(validated_run, tmp_path / "other_data"))
    recipe = yaml.safe_load((other_data / RECIPE).read_text())
    (other_data / RECIPE).write_text(yaml.safe_dump({**recipe, "dataset_name": "someone/digits"}))
    with pytest.raises(ValueError) as error:
        evaluate_model(str(other_data), data, split="validation")
    assert str(error.value) == (
        "Cannot know the run's validation split: the data has no validation split of its own, and it is not the data "
        f"of the run in {other_data} (dataset_name='digits' (the run's: 'someone/digits')). Evaluate on --split test, "
        "or give the run's data."
    )
    assert not list(tmp_path.rglob("eval_validation*.json"))
