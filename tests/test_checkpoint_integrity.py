"""A checkpoint is complete by content, not only by form: damaged tensors, optimizer states and trainer states are
found before a run resumes from them; a resumed run sets aside the checkpoints the Trainer must not count, stops when
its weights turn non-finite before saving them, and names the config fields a changed recipe no longer matches."""

import json
import logging
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import Trainer, TrainingArguments

from vit_ft import ViTForImageClassification
from vit_ft.checkpoint_integrity import (
    checkpoint_problems,
    latest_checkpoint,
    resolve_resume_checkpoint,
    set_aside_checkpoints,
    write_checksums,
)

from .conftest import tiny_config
from .test_cli import assert_one_line, files
from .test_preemption import LATEST, _command, _environment


class _RandomImages(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        return {"pixel_values": torch.randn(3, 32, 32, generator=generator), "labels": index % 5}


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    """checkpoint-1 and checkpoint-2 of the plain transformers Trainer (no vit-ft callback: no checksums)."""
    folder = tmp_path_factory.mktemp("plain")
    args = TrainingArguments(
        output_dir=str(folder),
        max_steps=2,
        save_steps=1,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )
    Trainer(model=ViTForImageClassification(tiny_config()), args=args, train_dataset=_RandomImages()).train()
    return folder


def _copy(checkpoint: Path, folder: Path) -> Path:
    return Path(shutil.copytree(checkpoint, folder / checkpoint.name))


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    """Writes `data` over the bytes of `path` from `offset` on (the file keeps its size: its form stays whole)."""
    content = bytearray(path.read_bytes())
    content[offset : offset + len(data)] = data
    path.write_bytes(bytes(content))


def _tensor_offset(path: Path, name: str) -> int:
    """Where tensor `name`'s bytes start in the safetensors file `path`."""
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])
    return 8 + header_length + header[name]["data_offsets"][0]


WEIGHT = "vit.embeddings.patch_embeddings.projection.weight"


def test_a_plain_trainer_checkpoint_is_complete_without_checksums(plain_run):
    assert not (plain_run / "checkpoint-2" / "vit_ft_checksums.json").exists()
    assert checkpoint_problems(plain_run / "checkpoint-2") == []
    assert resolve_resume_checkpoint(plain_run, "latest") == str(plain_run / "checkpoint-2")


def test_damage_inside_a_file_is_found_by_its_content(plain_run, tmp_path):
    checkpoint = _copy(plain_run / "checkpoint-2", tmp_path)
    # 12 float32 NaNs inside a tensor: the safetensors header still matches the file's size.
    nan = np.full(12, np.nan, dtype="<f4").tobytes()
    _overwrite(checkpoint / "model.safetensors", _tensor_offset(checkpoint / "model.safetensors", WEIGHT), nan)
    # 4 kB of random bytes inside optimizer.pt: torch.load reads them without a word; the archive's CRC does not match.
    optimizer = checkpoint / "optimizer.pt"
    _overwrite(optimizer, _largest_record_offset(optimizer), np.random.default_rng(0).bytes(4096))
    assert torch.load(optimizer, weights_only=True)["param_groups"]  # what the Trainer would have resumed from
    assert checkpoint_problems(checkpoint) == [
        f"model.safetensors holds 12 non-finite values (NaN or inf), the first in {WEIGHT}",
        f"optimizer.pt is damaged (its part {_crc_failure(optimizer)} fails the archive's CRC check)",
    ]


def _largest_record_offset(path: Path) -> int:
    """Where the data of the largest record (a tensor's bytes) starts in the zip archive torch.save wrote at `path`."""
    with zipfile.ZipFile(path) as archive:
        tensors = [info for info in archive.infolist() if info.filename.split("/")[-2:-1] == ["data"]]
    record = max(tensors, key=lambda info: info.file_size)
    # A zip local header: 30 bytes, whose last four give the lengths of the name and the extra field after it.
    header = path.read_bytes()[record.header_offset : record.header_offset + 30]
    name_length, extra_length = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    return record.header_offset + 30 + name_length + extra_length


def _crc_failure(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.testzip()


def test_states_the_trainer_cannot_resume_from_are_named(plain_run, tmp_path):
    checkpoint = _copy(plain_run / "checkpoint-2", tmp_path)
    (checkpoint / "trainer_state.json").write_text("{}")
    torch.save({}, checkpoint / "optimizer.pt")
    torch.save([1, 2], checkpoint / "scheduler.pt")
    assert checkpoint_problems(checkpoint) == [
        "trainer_state.json has no global_step or train_batch_size",
        "optimizer.pt has no param_groups",
        "scheduler.pt holds a list, not a scheduler state",
    ]
    state = json.loads((plain_run / "checkpoint-2" / "trainer_state.json").read_text())
    (checkpoint / "trainer_state.json").write_text(json.dumps({**state, "global_step": "2"}))
    assert checkpoint_problems(checkpoint)[0] == "trainer_state.json has global_step '2', not an integer"
    (checkpoint / "trainer_state.json").write_text(json.dumps({**state, "best_step": 2}))
    assert checkpoint_problems(checkpoint)[0] == "trainer_state.json has fields the Trainer does not know (best_step)"
    (checkpoint / "trainer_state.json").write_text("[]")
    assert checkpoint_problems(checkpoint)[0] == "trainer_state.json holds a JSON list, not an object"


def test_checksums_find_damage_that_leaves_every_value_finite(plain_run, tmp_path):
    checkpoint = _copy(plain_run / "checkpoint-2", tmp_path)
    (checkpoint / "rng_state_1.pth").write_bytes(b"another process's, still being written")
    write_checksums(checkpoint, process_index=0)
    listed = json.loads((checkpoint / "vit_ft_checksums.json").read_text())["sha256"]
    assert sorted(listed) == sorted(
        path.name for path in checkpoint.iterdir() if path.name not in ("vit_ft_checksums.json", "rng_state_1.pth")
    )
    (checkpoint / "rng_state_1.pth").unlink()
    assert checkpoint_problems(checkpoint) == []
    # Small finite values over a weight: only the checksum tells.
    finite = np.full(256, 0.5, dtype="<f4").tobytes()
    _overwrite(checkpoint / "model.safetensors", _tensor_offset(checkpoint / "model.safetensors", WEIGHT), finite)
    (checkpoint / "training_args.bin").unlink()
    assert checkpoint_problems(checkpoint) == [
        "model.safetensors does not match its checksum in vit_ft_checksums.json",
        "no training_args.bin (listed in vit_ft_checksums.json)",
    ]


def test_resume_sets_aside_an_incomplete_or_newer_checkpoint_and_keeps_the_rest(plain_run, tmp_path, caplog):
    for step in (1, 2):
        _copy(plain_run / f"checkpoint-{step}", tmp_path)
    (tmp_path / "checkpoint-999999").mkdir()
    latest = resolve_resume_checkpoint(tmp_path, "latest")
    assert latest == str(tmp_path / "checkpoint-2")
    # Without save_total_limit an older incomplete one counts for nothing: it stays.
    (tmp_path / "checkpoint-0").mkdir()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoint_integrity"):
        moved = set_aside_checkpoints(tmp_path, tmp_path / "checkpoint-1", save_total_limit=None)
    assert moved == [tmp_path / "_set_aside_checkpoint-2", tmp_path / "_set_aside_checkpoint-999999"]
    assert caplog.messages == [
        f"Resuming from checkpoint-1: set aside in {tmp_path}, so that the Trainer neither saves among nor deletes by "
        "them: checkpoint-2 (newer than step 1) to _set_aside_checkpoint-2, checkpoint-999999 (newer than step 1) to "
        "_set_aside_checkpoint-999999."
    ]
    assert (tmp_path / "_set_aside_checkpoint-2" / "model.safetensors").is_file()
    assert set_aside_checkpoints(tmp_path, tmp_path / "checkpoint-1", save_total_limit=2) == [
        tmp_path / "_set_aside_checkpoint-0"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "_set_aside_checkpoint-0",
        "_set_aside_checkpoint-2",
        "_set_aside_checkpoint-999999",
        "checkpoint-1",
    ]


# Through `vit-ft train`: a 6-step digits run with checkpoints 2, 4 and 6, written by vit-ft (with checksums).


@pytest.fixture(scope="module")
def vit_ft_run(tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("vit_ft_run") / "run"
    subprocess.run(_command(output_dir, *LATEST), check=True, capture_output=True, env=_environment())
    return output_dir


def _train(output_dir: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(output_dir, *LATEST, *flags), capture_output=True, text=True, env=_environment())


def _all_finite(path: Path) -> bool:
    return all(torch.isfinite(tensor).all() for tensor in load_file(str(path)).values())


@pytest.mark.slow
def test_resume_latest_skips_checkpoints_with_random_bytes_inside_and_ends_finite(vit_ft_run, tmp_path):
    run = Path(shutil.copytree(vit_ft_run, tmp_path / "run"))
    assert (run / "checkpoint-6" / "vit_ft_checksums.json").is_file()
    random_bytes = np.random.default_rng(0).bytes(4096)
    weights = run / "checkpoint-6" / "model.safetensors"
    _overwrite(weights, weights.stat().st_size // 2, random_bytes)
    optimizer = run / "checkpoint-4" / "optimizer.pt"
    _overwrite(optimizer, optimizer.stat().st_size // 2, random_bytes)
    result = _train(run, "--resume_from_checkpoint", "latest")
    assert result.returncode == 0, result.stderr
    # Of the 1,024 float32 values these bytes make, 4 are NaN or inf (and the checksum differs, said once).
    assert (
        f"Skipping {run / 'checkpoint-6'}: it is incomplete (model.safetensors holds 4 non-finite values (NaN or "
        "inf), the first in vit.layers.1.mlp.fc2.weight)."
    ) in result.stderr
    assert f"Skipping {run / 'checkpoint-4'}: it is incomplete (optimizer.pt is damaged (its part " in result.stderr
    assert _all_finite(run / "model.safetensors")
    history = json.loads((run / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3, 4, 5, 6]
    assert sorted(path.name for path in run.glob("_set_aside_*")) == [
        "_set_aside_checkpoint-4",
        "_set_aside_checkpoint-6",
    ]


@pytest.mark.slow
def test_an_empty_newest_checkpoint_is_set_aside_and_save_total_limit_keeps_the_complete_ones(vit_ft_run, tmp_path):
    run = tmp_path / "run"
    for step in (2, 4):
        _copy(vit_ft_run / f"checkpoint-{step}", run)
    (run / "checkpoint-999999").mkdir()
    result = _train(run, "--max_steps", "6", "--save_total_limit", "2", "--resume_from_checkpoint", "latest")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in run.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert list((run / "_set_aside_checkpoint-999999").iterdir()) == []
    assert "checkpoint-999999 (newer than step 4) to _set_aside_checkpoint-999999." in result.stderr
    assert checkpoint_problems(run / "checkpoint-4") == [] and latest_checkpoint(run) == run / "checkpoint-6"


@pytest.mark.slow
def test_a_resumed_run_whose_weights_turn_non_finite_stops_without_saving_them(vit_ft_run, tmp_path):
    run = Path(shutil.copytree(vit_ft_run, tmp_path / "run"))
    # Finite but ruinous moments: exp_avg near float32's largest value over exp_avg_sq 0 sends the next AdamW step to
    # inf. Complete by structure, with CRCs and checksums rewritten: only the run itself can tell.
    checkpoint = run / "checkpoint-4"
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    for state in optimizer["state"].values():
        state["exp_avg"].fill_(3e38)
        state["exp_avg_sq"].zero_()
    torch.save(optimizer, checkpoint / "optimizer.pt")
    write_checksums(checkpoint)
    assert checkpoint_problems(checkpoint) == []
    # The resumed run rewrites vit_ft_recipe.yaml, as every run does; the model, results and plots must stay.
    final = {name: digest for name, digest in files(run).items() if "/" not in name and name != "vit_ft_recipe.yaml"}
    result = _train(run, "--resume_from_checkpoint", str(checkpoint))
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("vit-ft train: training diverged: the weights hold NaN or inf after step 5 (")
    assert last.endswith(
        f", in the run resumed from {checkpoint}; nothing of step 5 was saved, and the model in "
        "output_dir was not overwritten. Resume from an earlier checkpoint, or lower the learning "
        "rate."
    )
    assert "Traceback" not in result.stderr
    after = {name: digest for name, digest in files(run).items() if "/" not in name and name != "vit_ft_recipe.yaml"}
    assert after == final  # the earlier run's model, results and plots, byte for byte
    assert sorted(path.name for path in run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert _all_finite(run / "model.safetensors")


@pytest.mark.slow
def test_resuming_with_other_model_overrides_names_the_fields_that_differ(vit_ft_run, tmp_path):
    run = Path(shutil.copytree(vit_ft_run, tmp_path / "run"))
    before = files(run)
    recipe = yaml.safe_load((Path(__file__).parent.parent / "recipes" / "full_finetune" / "digits.yaml").read_text())
    overrides = {**recipe["model_overrides"], "hidden_size": 64, "intermediate_size": 128}  # the run's, two changed
    result = _train(
        run, "--model_overrides", json.dumps(overrides), "--resume_from_checkpoint", str(run / "checkpoint-4")
    )
    assert_one_line(
        result,
        f"vit-ft train: {run / 'checkpoint-4' / 'config.json'} has hidden_size 96, "
        "intermediate_size 192; the recipe builds hidden_size 64, intermediate_size 128: resume "
        "with the run's model_overrides (saved in its vit_ft_recipe.yaml), or start a new run.",
    )
    assert {name: digest for name, digest in files(run).items() if not name.startswith("_")} == {
        name: digest for name, digest in before.items() if not name.startswith("_")
    }
