"""Streamed training on shards written by `vit-ft shard`, under `accelerate launch`: two processes on CPU (gloo)."""

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import two_process_launch
from tests.data.test_streams import write_digits_shards

ROOT = Path(__file__).resolve().parent.parent
STEPS_PER_EPOCH = 45  # ceil(1,437 / (2 processes x 16))
TINY_MODEL = (
    "{image_size: 16, patch_size: 2, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, "
    "intermediate_size: 64}"
)


def launch(tmp_path: Path, shards: Path, output_dir: Path, *flags: str, port: int = 29531):
    """`vit-ft train` of a tiny model on the digits shards, 2 processes; returns each rank's events and the stderr."""
    probe = output_dir.parent / f"probe-{output_dir.name}"
    probe.mkdir()
    recipe = tmp_path / "stream.yaml"
    recipe.write_text(
        f"preset: vit_tiny_patch16_224\nmodel_overrides: {TINY_MODEL}\n"
        f"train_shards: {shards}/train-{{000000..000004}}.tar\n"
        "seed: 0\nper_device_train_batch_size: 16\nlearning_rate: 0.001\nhorizontal_flip: false\n"
        "eval_strategy: 'no'\nreport_to: none\nuse_cpu: true\ndisable_tqdm: true\nlogging_steps: 15\n"
    )
    command = [
        *two_process_launch(port),
        str(ROOT / "tests" / "multiprocess_probe.py"),
        "train",
        str(recipe),
        "--output_dir",
        str(output_dir),
        *flags,
    ]
    env = {**os.environ, "VIT_FT_PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, cwd=tmp_path, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    events = {}
    for rank in (0, 1):
        lines = (probe / f"rank{rank}.jsonl").read_text().splitlines()
        events[rank] = [event for event in map(json.loads, lines) if event["event"] == "stream"]
    return events, done.stderr


@pytest.mark.slow
def test_two_processes_read_each_example_once_per_epoch_and_resume_mid_epoch_as_the_whole_run(tmp_path):
    shards = tmp_path / "shards"
    write_digits_shards(shards)  # 5 shards: an odd count for 2 processes
    flags = ["--num_train_epochs", "2", "--save_strategy", "steps", "--save_steps", "60"]
    whole, _ = launch(tmp_path, shards, tmp_path / "whole", *flags)
    epoch_length = STEPS_PER_EPOCH * 16
    assert len(whole[0]) == len(whole[1]) == 2 * epoch_length  # equal batches on both: no process waits for the other
    for epoch in (0, 1):
        per_rank = [[event["id"] for event in whole[rank][epoch * epoch_length :][:epoch_length]] for rank in (0, 1)]
        seen = Counter(per_rank[0] + per_rank[1])
        assert len(seen) == 1437 and sum(seen.values()) - 1437 == 3  # all once, 3 padding repeats (1,440 slots)

    # Stopped at step 60, in the second epoch, then resumed by new processes from that checkpoint.
    shutil.copytree(tmp_path / "whole" / "checkpoint-60", tmp_path / "resumed" / "checkpoint-60")
    resumed, _ = launch(
        tmp_path, shards, tmp_path / "resumed", *flags, "--resume_from_checkpoint", "latest", port=29532
    )
    for rank in (0, 1):
        # It reads from where step 60 left the stream, nothing before: the rest of the whole run's examples.
        assert [event["id"] for event in resumed[rank]] == [event["id"] for event in whole[rank][60 * 16 :]]
    for name in ("model.safetensors", "checkpoint-90/optimizer.pt"):
        if name.endswith(".pt"):
            a = torch.load(tmp_path / "whole" / name, weights_only=False)["state"]
            b = torch.load(tmp_path / "resumed" / name, weights_only=False)["state"]
            assert all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)
        else:
            a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "resumed" / name)
            assert all(torch.equal(a[key], b[key]) for key in a), name


@pytest.mark.slow
def test_a_damaged_shard_with_dataloader_workers_is_named_and_the_run_ends(tmp_path):
    shards = tmp_path / "shards"
    write_digits_shards(shards)
    damaged = shards / "train-000001.tar"
    damaged.write_bytes(damaged.read_bytes()[:50_000])
    events, stderr = launch(
        tmp_path,
        shards,
        tmp_path / "out",
        "--num_train_epochs",
        "1",
        "--save_strategy",
        "no",
        "--dataloader_num_workers",
        "2",
        port=29533,
    )
    assert f"Shard {damaged} is damaged" in stderr
    assert len(events[0]) == len(events[1]) == STEPS_PER_EPOCH * 16
    assert (tmp_path / "out" / "model.safetensors").is_file()
