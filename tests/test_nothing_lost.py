"""
Ten careless inputs that once gave a wrong answer without a word or destroyed files, each run as a user runs it:
the real `vit-ft` command in a fresh process, on a digits run trained by `vit-ft train`. Each test names the defect
it guards against. A run, an export or an evaluation never overwrites another's files unless told to, and a model
folder always serves its own weights.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from .test_cli import REPO, assert_one_line, files

RECIPE = REPO / "recipes" / "full_finetune" / "digits.yaml"
# Short runs of the digits model: 150 steps (about 28% test accuracy) tell apart from 2 steps (about 10%). They read
# the class token: the recipe's mean pooling wins over 100 epochs but is still near chance after 150 steps.
CLASS_TOKEN = {**yaml.safe_load(RECIPE.read_text())["model_overrides"], "pooling": "cls"}
SHORT = [
    "--per_device_train_batch_size",
    "32",
    "--eval_strategy",
    "no",
    "--logging_steps",
    "10",
    "--save_strategy",
    "steps",
    "--save_steps",
    "50",
    "--save_total_limit",
    "2",
    "--model_overrides",
    json.dumps(CLASS_TOKEN),
]
TRAINED_STEPS = 150


def vit_ft(*args, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    """`python -m vit_ft.cli ARGS` in `cwd`: offline, one thread, stdin closed (no command may ask anything)."""
    environment = {name: value for name, value in os.environ.items() if name != "VIT_FT_DEBUG"}
    environment.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "vit_ft.cli", *map(str, args)]
    result = subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def train(output_dir: str, *flags: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return vit_ft("train", RECIPE, *SHORT, "--output_dir", output_dir, *flags, cwd=cwd, check=check)


def results(folder: Path) -> dict:
    return json.loads((folder / "all_results.json").read_text())


def evaluated(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """The command stopped in one line, without a traceback, and the line holds each of `words`."""
    message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    assert_one_line(result, message)
    for word in words:
        assert word in message, message
    return message


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A digits run of 150 steps (`run/`, checkpoints 100 and 150) and its float32 + int8 export (`run_onnx/`)."""
    root = tmp_path_factory.mktemp("nothing_lost")
    train("run", "--max_steps", str(TRAINED_STEPS), cwd=root)
    vit_ft("export", "--model", "run", "--output", "run_onnx", "--quantize", "int8", cwd=root, check=True)
    return root


@pytest.fixture
def workdir(trained, tmp_path) -> Path:
    """A copy of the trained run and its export, for a test to damage."""
    for name in ("run", "run_onnx"):
        shutil.copytree(trained / name, tmp_path / name, ignore=shutil.ignore_patterns("_vit_ft_run.lock"))
    return tmp_path


@pytest.mark.slow
def test_1_a_retrained_folder_serves_its_new_model_not_a_stale_onnx_folder(workdir):
    shutil.copytree(workdir / "run_onnx" / "onnx", workdir / "run" / "onnx")  # as `vit-ft push --with_onnx` leaves it
    old = results(workdir / "run")["test_accuracy"]
    train("run", "--max_steps", "2", "--overwrite_output_dir", "true", cwd=workdir)
    new = results(workdir / "run")["test_accuracy"]
    assert abs(new - old) > 0.1  # two models that answer differently
    assert not (workdir / "run" / "onnx").exists()
    scored = evaluated(vit_ft("evaluate", "--model", "run", "--dataset_name", "digits", cwd=workdir))
    assert scored["clean"]["accuracy"] == pytest.approx(new, abs=1e-6)

    # A resumed run writes a new final model too: an onnx/ of the earlier one does not outlive it.
    shutil.copytree(workdir / "run_onnx" / "onnx", workdir / "run" / "onnx")
    train("run", "--max_steps", "4", "--save_steps", "2", "--overwrite_output_dir", "true", cwd=workdir)
    shutil.copytree(workdir / "run_onnx" / "onnx", workdir / "run" / "onnx")
    train("run", "--max_steps", "6", "--save_steps", "2", "--resume_from_checkpoint", "latest", cwd=workdir)
    assert not (workdir / "run" / "onnx").exists()
    scored = evaluated(vit_ft("evaluate", "--model", "run", "--dataset_name", "digits", cwd=workdir))
    assert scored["clean"]["accuracy"] == pytest.approx(results(workdir / "run")["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_2_an_export_into_an_earlier_export_is_refused_and_overwrite_replaces_it_whole(workdir):
    before = files(workdir / "run_onnx")
    assert_refused(vit_ft("export", "--model", "run", "--output", "run_onnx", cwd=workdir), "run_onnx", "--overwrite")
    assert files(workdir / "run_onnx") == before

    # Another model, with four labels: with --overwrite, float32 and int8 both answer from it.
    four = _four_label_model(workdir)
    vit_ft(
        "export", "--model", four, "--output", "run_onnx", "--quantize", "int8", "--overwrite", cwd=workdir, check=True
    )
    config_labels = {str(i): str(i) for i in range(4)}
    assert json.loads((workdir / "run_onnx" / "config.json").read_text())["id2label"] == config_labels
    image = _digit_png(workdir)
    for onnx_file in ("model.onnx", "model_quantized.onnx"):
        answer = vit_ft("predict", "--model", "run_onnx", "--onnx_file", onnx_file, image, cwd=workdir, check=True)
        labels = [prediction["label"] for prediction in json.loads(answer.stdout)["predictions"]]
        assert sorted(labels) == sorted(config_labels.values()), onnx_file


def _four_label_model(workdir: Path) -> str:
    """The run's model with a four-class head, saved as `four/`."""
    code = (
        "import sys; from vit_ft import ViTForImageClassification; from transformers import AutoImageProcessor\n"
        "labels = {i: str(i) for i in range(4)}\n"
        "model = ViTForImageClassification.from_pretrained(sys.argv[1], num_labels=4, id2label=labels, "
        "label2id={v: k for k, v in labels.items()}, ignore_mismatched_sizes=True)\n"
        "model.save_pretrained(sys.argv[2])\n"
        "AutoImageProcessor.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2])\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-c", code, "run", "four"], cwd=workdir, env=environment, check=True, capture_output=True
    )
    return "four"


def _digit_png(workdir: Path) -> Path:
    from vit_ft.data.readers import load_digits_dataset

    path = workdir / "digit.png"
    load_digits_dataset()["test"][0]["image"].save(path)
    return path


@pytest.mark.slow
def test_3_an_export_into_a_training_folder_is_refused(workdir):
    before = files(workdir / "run")
    for flags in ([], ["--overwrite"]):
        assert_refused(vit_ft("export", "--model", "run_onnx", "--output", "run", *flags, cwd=workdir), "run")
        assert_refused(vit_ft("export", "--model", "run", "--output", "run", *flags, cwd=workdir), "run")
    assert files(workdir / "run") == before
    answer = vit_ft("predict", "--model", "run", _digit_png(workdir), cwd=workdir, check=True)
    assert json.loads(answer.stdout)["predictions"][0]["label"] in [str(i) for i in range(10)]


@pytest.mark.slow
def test_4_a_failed_export_leaves_the_export_it_was_replacing_as_it_was(workdir):
    before = files(workdir / "run_onnx")
    (workdir / "run" / "preprocessor_config.json").write_text('{"do_resize": tr')  # cut short
    result = vit_ft(
        "export", "--model", "run", "--output", "run_onnx", "--quantize", "int8", "--overwrite", cwd=workdir
    )
    assert_refused(result, "preprocessor_config.json")
    assert files(workdir / "run_onnx") == before
    assert sorted(path.name for path in workdir.iterdir()) == ["run", "run_onnx"]  # no temporary folder left


def _damage(path: Path, size: int = 4096) -> None:
    """`size` random bytes written over the middle of `path`: its length and archive structure stay."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + size] = torch.randint(0, 256, (size,), generator=torch.Generator().manual_seed(0)).tolist()
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.pt"])
def test_5_content_damage_in_the_newest_checkpoint_is_not_resumed_from(workdir, damaged):
    run = workdir / "run"
    newest = run / f"checkpoint-{TRAINED_STEPS}"
    _damage(newest / damaged)
    result = train(
        "run", "--max_steps", str(TRAINED_STEPS + 20), "--resume_from_checkpoint", "latest", cwd=workdir, check=False
    )
    assert f"Skipping run/{newest.name}: it is incomplete ({damaged} " in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr  # resumed from checkpoint-100
    weights = load_file(run / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert results(run)["test_accuracy"] > 0.2  # a model of NaN weights scores 0.1


@pytest.mark.slow
def test_5_an_explicit_resume_from_a_damaged_checkpoint_is_refused_and_changes_nothing(workdir):
    run = workdir / "run"
    newest = run / f"checkpoint-{TRAINED_STEPS}"
    _damage(newest / "model.safetensors")
    before = files(run)
    result = train(
        "run",
        "--max_steps",
        str(TRAINED_STEPS + 20),
        "--resume_from_checkpoint",
        str(newest),
        cwd=workdir,
        check=False,
    )
    assert_refused(result, str(newest), "model.safetensors", "checkpoint-100")
    assert files(run) == before


@pytest.mark.slow
def test_6_evaluate_on_validation_scores_the_runs_own_validation_images(workdir):
    train("validated", "--max_steps", "20", "--eval_strategy", "steps", "--eval_steps", "20", cwd=workdir)
    recorded = results(workdir / "validated")
    scored = evaluated(
        vit_ft("evaluate", "--model", "validated", "--dataset_name", "digits", "--split", "validation", cwd=workdir)
    )
    assert scored["examples"] == 144  # a tenth of the 1,437 training images, as the run carved them
    assert scored["clean"]["accuracy"] == pytest.approx(recorded["eval_accuracy"], abs=1e-6)
    assert scored["clean"]["loss"] == pytest.approx(recorded["eval_loss"], abs=1e-4)


@pytest.mark.slow
def test_7_evaluate_never_writes_over_a_models_own_file(workdir):
    before = files(workdir / "run")
    for flags in ([], ["--overwrite"]):
        result = vit_ft(
            "evaluate",
            "--model",
            "run",
            "--dataset_name",
            "digits",
            "--output",
            "run/config.json",
            *flags,
            cwd=workdir,
        )
        assert_refused(result, "run/config.json")
    assert files(workdir / "run") == before
    vit_ft("predict", "--model", "run", _digit_png(workdir), cwd=workdir, check=True)


@pytest.mark.slow
def test_8_an_onnx_file_outside_the_export_or_of_another_width_is_refused(workdir):
    outside = workdir / "elsewhere.onnx"
    shutil.copy(workdir / "run_onnx" / "onnx" / "model.onnx", outside)
    image = _digit_png(workdir)
    for onnx_file in (str(outside), "../../elsewhere.onnx"):
        assert_refused(
            vit_ft("predict", "--model", "run_onnx", "--onnx_file", onnx_file, image, cwd=workdir), onnx_file
        )
    # An export of a four-class model, its file put into the ten-label export.
    four = _four_label_model(workdir)
    vit_ft("export", "--model", four, "--output", "four_onnx", cwd=workdir, check=True)
    shutil.copy(workdir / "four_onnx" / "onnx" / "model.onnx", workdir / "run_onnx" / "onnx" / "four.onnx")
    for command in (["predict", image], ["evaluate", "--dataset_name", "digits"]):
        result = vit_ft(command[0], "--model", "run_onnx", "--onnx_file", "four.onnx", *command[1:], cwd=workdir)
        assert_refused(result, "four.onnx", "4", "10")


@pytest.mark.slow
def test_9_an_empty_checkpoint_folder_does_not_cost_the_run_its_complete_checkpoint(workdir):
    run = workdir / "run"
    (run / "checkpoint-999999").mkdir()
    result = train(
        "run",
        "--max_steps",
        str(TRAINED_STEPS + 10),
        "--save_steps",
        "10",
        "--save_total_limit",
        "1",
        "--resume_from_checkpoint",
        "latest",
        cwd=workdir,
    )
    assert "checkpoint-999999" in result.stderr
    checkpoints = sorted(path.name for path in run.glob("checkpoint-*"))
    assert checkpoints == [f"checkpoint-{TRAINED_STEPS + 10}"]
    # Set aside, not deleted: the folder is still there under another name.
    assert [path.name for path in run.iterdir() if "999999" in path.name and path.is_dir()]


@pytest.mark.slow
def test_10_evaluations_of_one_export_keep_their_own_files(workdir):
    export = workdir / "run_onnx"
    float32 = evaluated(vit_ft("evaluate", "--model", "run_onnx", "--dataset_name", "digits", cwd=workdir))
    int8 = evaluated(
        vit_ft(
            "evaluate",
            "--model",
            "run_onnx",
            "--onnx_file",
            "model_quantized.onnx",
            "--dataset_name",
            "digits",
            cwd=workdir,
        )
    )
    written = sorted(path.name for path in export.glob("eval_*.json"))
    assert len(written) == 2, written
    scored_files = {json.loads((export / name).read_text())["model_file"] for name in written}
    assert scored_files == {"onnx/model.onnx", "onnx/model_quantized.onnx"}
    assert {float32["model_file"], int8["model_file"]} == scored_files

    robustness = ["--corruptions", "all", "--severity", "1,2,3,4,5", "--max_eval_samples", "40"]
    vit_ft("evaluate", "--model", "run_onnx", "--dataset_name", "digits", *robustness, cwd=workdir, check=True)
    before = files(export)
    again = vit_ft(
        "evaluate",
        "--model",
        "run_onnx",
        "--dataset_name",
        "digits",
        "--corruptions",
        "jpeg",
        "--max_eval_samples",
        "40",
        cwd=workdir,
    )
    assert_refused(again, "robustness_test.json", "--overwrite")
    assert files(export) == before
    vit_ft(
        "evaluate",
        "--model",
        "run_onnx",
        "--dataset_name",
        "digits",
        "--corruptions",
        "jpeg",
        "--max_eval_samples",
        "40",
        "--overwrite",
        cwd=workdir,
        check=True,
    )
    assert list(json.loads((export / "robustness_test.json").read_text())["corruptions"]) == ["jpeg"]
