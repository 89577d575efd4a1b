"""Runs that survive: a signal stops `vit-ft train` with a checkpoint and the command that resumes it;
`--resume_from_checkpoint latest` resumes from the newest complete checkpoint."""

import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vit_ft.checkpoint_integrity import checkpoint_problems, latest_checkpoint, resolve_resume_checkpoint
from vit_ft.recipe import read_recipe

from .test_train_run import QUICK, RECIPE

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json")


def _command(output_dir, *flags) -> list[str]:
    return [sys.executable, "-m", "vit_ft.cli", "train", str(RECIPE), *QUICK, "--output_dir", str(output_dir), *flags]


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _start(command: list[str], log: Path) -> subprocess.Popen:
    """Starts `command`, its stdout (where the Trainer logs each step) to `log`, its stderr piped."""
    with open(log, "w") as stdout:
        return subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=_environment())


def _wait_for_training(process: subprocess.Popen, log: Path) -> None:
    """Returns once the Trainer has logged a step (--logging_steps 1): training is under way."""
    deadline = time.monotonic() + 300
    while "'loss'" not in log.read_text():
        assert process.poll() is None, f"the run ended before training: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no training step logged in 300 s"
        time.sleep(0.05)


def _assert_same_weights(first: Path, second: Path) -> None:
    first, second = load_file(str(first)), load_file(str(second))
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


# A digits run's steps are fast: enough of them that the signal arrives long before the last.
PREEMPTED = ["--max_steps", "100", "--save_strategy", "no", "--eval_strategy", "no", "--ema_decay", "0.9"]


def _signalled_run(output_dir: Path, *signals: signal.Signals, timeout: float = 300) -> tuple[int, str]:
    """Starts a preemptible run into `output_dir`, sends `signals` once it trains; returns its exit code, stderr."""
    log = output_dir.parent / f"{output_dir.name}.log"
    process = _start(_command(output_dir, *PREEMPTED), log)
    _wait_for_training(process, log)
    for number in signals:
        process.send_signal(number)
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_whose_printed_resume_command_ends_as_an_uninterrupted_run(tmp_path):
    returncode, stderr = _signalled_run(tmp_path / "run", signal.SIGTERM)
    assert returncode == 128 + signal.SIGTERM
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("vit-ft train: stopped by SIGTERM after step "), stderr
    step = int(last.split("after step ")[1].split(";")[0])
    checkpoint = tmp_path / "run" / f"checkpoint-{step}"
    assert 0 < step < 100
    assert f"; checkpoint saved in {checkpoint}. Resume with: vit-ft train {RECIPE} " in last
    assert last.endswith(f" --resume_from_checkpoint {checkpoint}")
    # Stopped: no evaluation, no test, no final model.
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [
        "_vit_ft_run.lock",
        f"checkpoint-{step}",
        "vit_ft_recipe.yaml",
    ]
    assert checkpoint_problems(checkpoint) == []
    assert all((checkpoint / name).is_file() for name in (*CHECKPOINT_FILES, "ema.safetensors"))
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
    torch.load(checkpoint / "optimizer.pt", weights_only=True)
    load_file(str(checkpoint / "ema.safetensors"))

    resume = shlex.split(last.split("Resume with: ", 1)[1])
    assert resume[:2] == ["vit-ft", "train"]
    subprocess.run(
        [sys.executable, "-m", "vit_ft.cli", *resume[1:]], check=True, capture_output=True, env=_environment()
    )
    subprocess.run(_command(tmp_path / "whole", *PREEMPTED), check=True, capture_output=True, env=_environment())
    _assert_same_weights(tmp_path / "run" / "model.safetensors", tmp_path / "whole" / "model.safetensors")


@pytest.mark.slow
def test_sigint_stops_with_the_exit_code_of_ctrl_c(tmp_path):
    returncode, stderr = _signalled_run(tmp_path / "run", signal.SIGINT)
    assert returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines()[-1].startswith("vit-ft train: stopped by SIGINT after step "), stderr


@pytest.mark.slow
def test_a_second_signal_ends_the_run_at_once(tmp_path):
    # Ctrl-C, then at once the scheduler's SIGTERM: one after the other, so that the second reaches the run before its
    # clean stop ends, even on a loaded machine. Two different signals: two of the same one that arrive before Python
    # runs its handler would be one; pending ones are handled in signal order, SIGINT first.
    returncode, stderr = _signalled_run(tmp_path / "run", signal.SIGINT, signal.SIGTERM, timeout=30)
    # Killed by the second signal, as without the handler: no clean stop, no resume line.
    assert returncode == -signal.SIGTERM
    assert "Resume with" not in stderr


# --resume_from_checkpoint latest.

LATEST = ["--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2", "--eval_strategy", "no"]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    """
    A real run of 6 steps with checkpoints 2, 4 and 6, in a subprocess with the thread count of the runs it is
    compared with: another count splits the matrix products differently, and the weights then differ in the last bits.
    """
    output_dir = tmp_path_factory.mktemp("whole")
    subprocess.run(_command(output_dir, *LATEST), check=True, capture_output=True, env=_environment())
    return output_dir


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
def test_checkpoint_problems_name_each_missing_or_damaged_file(whole_run, tmp_path):
    for step in (2, 4, 6):
        assert checkpoint_problems(whole_run / f"checkpoint-{step}") == []
    damaged = tmp_path / "checkpoint-4"
    shutil.copytree(whole_run / "checkpoint-4", damaged)
    _truncate(damaged / "model.safetensors")
    assert checkpoint_problems(damaged) == ["model.safetensors is damaged"]
    _truncate(damaged / "trainer_state.json")
    (damaged / "optimizer.pt").unlink()
    _truncate(damaged / "rng_state.pth")
    assert checkpoint_problems(damaged) == [
        "model.safetensors is damaged",
        "trainer_state.json is damaged",
        "no optimizer.pt",
        "rng_state.pth is damaged",
    ]
    # A DeepSpeed checkpoint holds the optimizer states in the engine's global_step<N> folder instead.
    (damaged / "global_step4").mkdir()
    assert "no optimizer.pt" not in checkpoint_problems(damaged)
    (damaged / "model.safetensors").unlink()
    (damaged / "scheduler.pt").unlink()
    assert checkpoint_problems(damaged)[:1] == ["no model.safetensors or adapter_model.safetensors"]
    assert "no scheduler.pt" in checkpoint_problems(damaged)


@pytest.mark.slow
def test_latest_skips_incomplete_checkpoints_and_explicit_incomplete_ones_are_refused(whole_run, tmp_path, caplog):
    for step in (2, 4, 6):
        shutil.copytree(whole_run / f"checkpoint-{step}", tmp_path / f"checkpoint-{step}")
    (tmp_path / "checkpoint-6" / "optimizer.pt").unlink()
    _truncate(tmp_path / "checkpoint-4" / "trainer_state.json")
    with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoint_integrity"):
        for value in ("latest", "true", "True", "1", "yes", True):
            assert resolve_resume_checkpoint(tmp_path, value) == str(tmp_path / "checkpoint-2")
    assert caplog.messages[:2] == [
        f"Skipping {tmp_path / 'checkpoint-6'}: it is incomplete (no optimizer.pt).",
        f"Skipping {tmp_path / 'checkpoint-4'}: it is incomplete (trainer_state.json is damaged).",
    ]
    with pytest.raises(ValueError) as error:
        resolve_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-6"))
    assert str(error.value) == (
        f"resume_from_checkpoint {tmp_path / 'checkpoint-6'} is incomplete (no optimizer.pt): "
        f"the newest complete one is {tmp_path / 'checkpoint-2'}."
    )
    assert resolve_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-2")) == str(tmp_path / "checkpoint-2")
    assert resolve_resume_checkpoint(tmp_path, None) is None
    shutil.rmtree(tmp_path / "checkpoint-2")
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(ValueError) as error:
        resolve_resume_checkpoint(tmp_path, "latest")
    assert str(error.value) == (
        f"resume_from_checkpoint latest: {tmp_path} holds no complete checkpoint-* folder to "
        "resume from: start without --resume_from_checkpoint, or give the output_dir that "
        "holds the run's checkpoints."
    )


@pytest.mark.slow
def test_resume_from_latest_skips_a_damaged_newest_checkpoint_and_ends_as_the_whole_run(whole_run, tmp_path):
    # A run stopped after step 4 left checkpoint-2 and a checkpoint-4 cut short while it was written.
    resumed = tmp_path / "resumed"
    for step in (2, 4):
        shutil.copytree(whole_run / f"checkpoint-{step}", resumed / f"checkpoint-{step}")
    _truncate(resumed / "checkpoint-4" / "model.safetensors")
    run = subprocess.run(
        _command(resumed, *LATEST, "--resume_from_checkpoint", "latest"),
        capture_output=True,
        text=True,
        env=_environment(),
    )
    assert run.returncode == 0, run.stderr
    assert f"Skipping {resumed / 'checkpoint-4'}: it is incomplete (model.safetensors is damaged)." in run.stderr
    history = json.loads((resumed / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3, 4, 5, 6]
    for name in ("checkpoint-4/model.safetensors", "checkpoint-6/model.safetensors", "model.safetensors"):
        _assert_same_weights(resumed / name, whole_run / name)


def test_a_yaml_true_resume_from_checkpoint_means_latest(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.read_text() + "\nresume_from_checkpoint: true\n")
    assert read_recipe(recipe).training.resume_from_checkpoint == "latest"
    recipe.write_text(RECIPE.read_text() + "\nresume_from_checkpoint: false\n")
    with pytest.raises(ValueError, match="resume_from_checkpoint is False"):
        read_recipe(recipe)


@pytest.mark.slow
def test_resuming_the_cli_from_a_damaged_checkpoint_is_one_line_that_names_the_complete_one(whole_run, tmp_path):
    from .test_cli import assert_one_line, files

    run = tmp_path / "run"
    for step in (2, 4):
        shutil.copytree(whole_run / f"checkpoint-{step}", run / f"checkpoint-{step}")
    _truncate(run / "checkpoint-4" / "model.safetensors")
    before = files(run)
    result = subprocess.run(
        _command(run, *LATEST, "--resume_from_checkpoint", str(run / "checkpoint-4")),
        capture_output=True,
        text=True,
        env=_environment(),
    )
    assert_one_line(
        result,
        f"vit-ft train: resume_from_checkpoint {run / 'checkpoint-4'} is incomplete "
        f"(model.safetensors is damaged): the newest complete one is {run / 'checkpoint-2'}.",
    )
    assert files(run) == before
