"""`vit-ft train` under `accelerate launch` with two processes on CPU (gloo)."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.conftest import two_process_launch
from vit_ft.data.arguments import DataArguments
from vit_ft.data.datasets import load_image_datasets

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "full_finetune" / "digits.yaml"


def launch(tmp_path: Path, *flags: str) -> dict[int, list[dict]]:
    """Runs the digits recipe on 2 gloo processes through the probe; returns each rank's recorded events."""
    probe = tmp_path / "probe"
    probe.mkdir()
    command = [
        *two_process_launch(29517),
        str(ROOT / "tests" / "multiprocess_probe.py"),
        "train",
        str(RECIPE),
        "--output_dir",
        str(tmp_path / "out"),
        "--max_eval_samples",
        "45",
        "--per_device_train_batch_size",
        "16",
        "--per_device_eval_batch_size",
        "16",
        "--disable_tqdm",
        "true",
        *flags,
    ]
    env = {**os.environ, "VIT_FT_PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(command, check=True, env=env, cwd=tmp_path, timeout=600)
    return {
        rank: [json.loads(line) for line in (probe / f"rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)
    }


@pytest.mark.slow
def test_two_processes_shard_train_save_once_and_count_eval_once(tmp_path):
    events = launch(
        tmp_path,
        "--max_steps",
        "4",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "4",
        "--save_strategy",
        "no",
        "--max_train_samples",
        "256",
    )
    train = {
        rank: [key for e in events[rank] if e["event"] == "fetch" and e["size"] == 256 for key in e["keys"]]
        for rank in (0, 1)
    }
    # 4 steps of 16 images per rank, plus the one batch accelerate's loader reads ahead: 80 each, none on both.
    assert len(train[0]) == len(train[1]) == 80
    assert not set(train[0]) & set(train[1])
    saves = {rank: [e["directory"] for e in events[rank] if e["event"] == "save"] for rank in (0, 1)}
    assert saves[1] == [] and saves[0] == [str(tmp_path / "out")]
    # Every rank scores the gathered predictions: validation (45 images, at step 4 and after training), then test
    # (45), each image exactly once, in dataset order, with no padding duplicates from the uneven split.
    data, _ = load_image_datasets(DataArguments(dataset_name="digits", train_val_split=0.1, max_eval_samples=45), 0)
    expected = [data["validation"]["label"][:], data["validation"]["label"][:], data["test"]["label"][:]]
    for rank in (0, 1):
        scored = [e for e in events[rank] if e["event"] == "metrics"]
        assert [e["labels"] for e in scored] == expected
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["test_accuracy"] == scored[-1]["accuracy"]
    eval_fetched = Counter(
        key for rank in (0, 1) for e in events[rank] if e["event"] == "fetch" and e["size"] == 45 for key in e["keys"]
    )
    assert set(eval_fetched) == set(range(45))


@pytest.mark.slow
def test_sigterm_to_the_launcher_saves_one_checkpoint_of_both_processes_and_one_line(tmp_path):
    from vit_ft.checkpoint_integrity import checkpoint_problems

    command = [
        *two_process_launch(29518),
        "-m",
        "vit_ft.cli",
        "train",
        str(RECIPE),
        "--output_dir",
        str(tmp_path / "out"),
        "--use_cpu",
        "true",
        "--max_train_samples",
        "160",
        "--per_device_train_batch_size",
        "16",
        "--logging_steps",
        "1",
        "--disable_tqdm",
        "true",
        "--max_steps",
        "100",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "stdout.log"
    with open(log, "w") as stdout:
        launcher = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while "'loss'" not in log.read_text():  # the main process logs each step: training is under way
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stderr.read()
        time.sleep(0.05)
    launcher.send_signal(signal.SIGTERM)  # the launcher sends it on to both processes
    _, stderr = launcher.communicate(timeout=300)
    assert launcher.returncode != 0
    stopped = [line for line in stderr.splitlines() if line.startswith("vit-ft train: stopped by SIGTERM after step")]
    assert len(stopped) == 1, stderr
    checkpoints = sorted((tmp_path / "out").glob("checkpoint-*"))
    step = stopped[0].split("after step ")[1].split(";")[0]
    assert [path.name for path in checkpoints] == [f"checkpoint-{step}"]
    assert checkpoint_problems(checkpoints[0]) == []
    assert {path.name for path in checkpoints[0].glob("rng_state*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not (tmp_path / "out" / "model.safetensors").exists()


# The same tiny run on 2 machines x 1 process and on 1 machine x 2 processes: world size 2 either way.
TOPOLOGY_RUN = [
    "--use_cpu",
    "true",
    "--max_train_samples",
    "160",
    "--max_eval_samples",
    "45",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "16",
    "--disable_tqdm",
    "true",
    "--max_steps",
    "4",
    "--eval_strategy",
    "no",
    "--save_strategy",
    "no",
]


def _launch_command(*launcher_flags: str, output_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *launcher_flags,
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "vit_ft.cli",
        "train",
        str(RECIPE),
        "--output_dir",
        str(output_dir),
        *TOPOLOGY_RUN,
    ]


@pytest.mark.slow
def test_two_machines_of_one_process_end_as_one_machine_of_two(tmp_path):
    from safetensors.torch import load_file

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # Two launchers on this machine, as on two machines that share the output folder: the shipped multi-node config,
    # its placeholders overridden as the docs say, over gloo.
    nodes = [
        subprocess.Popen(
            _launch_command(
                "--config_file",
                str(ROOT / "recipes" / "accelerate" / "multi_node.yaml"),
                "--num_machines",
                "2",
                "--num_processes",
                "2",
                "--machine_rank",
                str(rank),
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                "29521",
                output_dir=tmp_path / "two_machines",
            ),
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs
    one_machine = subprocess.run(
        _launch_command(
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--main_process_port",
            "29522",
            output_dir=tmp_path / "one_machine",
        ),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one_machine.returncode == 0, one_machine.stdout + one_machine.stderr  # the launch's log, when it fails
    runs = ("two_machines", "one_machine")
    two, one = (load_file(tmp_path / run / "model.safetensors") for run in runs)
    assert two.keys() == one.keys()
    assert all(torch.equal(two[key], one[key]) for key in two)
    results = [json.loads((tmp_path / run / "all_results.json").read_text()) for run in runs]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
    assert results[0]["train_loss"] == results[1]["train_loss"]
