"""`vit-ft pretrain` end to end on the built-in digits, then `vit-ft train` from its output; resume; bad input."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import two_process_launch
from tests.test_cli import vit_ft_cli
from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.checkpoints.loading import build_model
from vit_ft.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
RECIPE = ROOT / "recipes" / "pretrain" / "digits_mae.yaml"
FINE_TUNE = ROOT / "recipes" / "full_finetune" / "digits_from_mae.yaml"
QUICK = [
    "--max_train_samples",
    "96",
    "--per_device_train_batch_size",
    "16",
    "--logging_steps",
    "1",
    "--save_strategy",
    "steps",
    "--save_steps",
    "2",
    "--eval_strategy",
    "steps",
    "--eval_steps",
    "2",
    "--num_reconstructions",
    "3",
]
DROPPED = "is a masked-autoencoding (pretraining) model: its encoder is loaded, its decoder"


@pytest.mark.slow
def test_pretrain_then_fine_tune_from_it(tmp_path):
    output = tmp_path / "mae"
    result = vit_ft_cli("pretrain", RECIPE, *QUICK, "--max_steps", "4", "--output_dir", output, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = {path.name for path in output.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "modeling_vit_ft.py",
        "configuration_vit_ft.py",
        "reconstructions.png",
        "training_curves.png",
        "README.md",
        "vit_ft_recipe.yaml",
        "all_results.json",
        "checkpoint-2",
        "checkpoint-4",
    } <= files
    config = json.loads((output / "config.json").read_text())
    assert config["architectures"] == ["ViTForMaskedAutoencoding"]
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_vit_ft.ViTForMaskedAutoencoding"
    assert (config["hidden_size"], config["decoder_hidden_size"], config["mask_ratio"]) == (96, 64, 0.75)
    results = json.loads((output / "all_results.json").read_text())
    assert results["eval_loss"] > 0 and results["train_loss"] > 0
    card = (output / "README.md").read_text()
    assert "pipeline_tag: image-feature-extraction" in card and "masked autoencoding" in card
    assert "![reconstructions" in card

    # The classifier built from the pretraining output has its encoder's weights, exactly, before training.
    pretrained = load_file(output / "model.safetensors")
    classifier, _ = build_model(ModelArguments(model_name_or_path=str(output)), [str(d) for d in range(10)])
    for name, tensor in classifier.state_dict().items():
        if name.startswith("vit."):
            torch.testing.assert_close(tensor, pretrained[name], rtol=0, atol=0)
    assert not any(name.startswith("decoder.") for name in classifier.state_dict())

    fine_tuned = tmp_path / "fine_tuned"
    result = vit_ft_cli(
        "train",
        FINE_TUNE,
        "--model_name_or_path",
        output,
        "--max_steps",
        "2",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "32",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--output_dir",
        fine_tuned,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(DROPPED) == 1
    assert "differ from the dataset's" not in result.stderr  # no head to re-label
    assert f"{output} has no classifier head: a new one is created for the dataset's 10 labels" in result.stderr
    assert json.loads((fine_tuned / "config.json").read_text())["architectures"] == ["ViTForImageClassification"]


@pytest.mark.slow
def test_resume_latest_continues_from_the_newest_checkpoint(tmp_path):
    # A constant learning rate: the short first run then follows the schedule of the whole one.
    flags = [*QUICK, "--lr_scheduler_type", "constant", "--warmup_steps", "0"]
    output = tmp_path / "mae"
    first = vit_ft_cli("pretrain", RECIPE, *flags, "--max_steps", "2", "--output_dir", output, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = vit_ft_cli(
        "pretrain",
        RECIPE,
        *flags,
        "--max_steps",
        "4",
        "--output_dir",
        output,
        "--resume_from_checkpoint",
        "latest",
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr
    state = json.loads((output / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]
    # Resumed from checkpoint-2 (its optimizer, schedule and random streams, which draw the masks), it ends with the
    # weights of an uninterrupted run.
    whole = tmp_path / "whole"
    uninterrupted = vit_ft_cli("pretrain", RECIPE, *flags, "--max_steps", "4", "--output_dir", whole, cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    resumed, expected = load_file(output / "model.safetensors"), load_file(whole / "model.safetensors")
    assert resumed.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6)
    started = load_file(output / "checkpoint-2" / "model.safetensors")
    assert not torch.equal(started["decoder.decoder_pred.weight"], resumed["decoder.decoder_pred.weight"])


@pytest.mark.slow
def test_accelerate_launch_of_two_processes_saves_one_model(tmp_path):
    output = tmp_path / "mae"
    command = [
        *two_process_launch(29519),
        "-m",
        "vit_ft.cli",
        "pretrain",
        str(RECIPE),
        *QUICK,
        "--max_steps",
        "2",
        "--output_dir",
        str(output),
        "--disable_tqdm",
        "true",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert {"model.safetensors", "reconstructions.png", "training_curves.png", "README.md"} <= {
        path.name for path in output.iterdir()
    }
    assert json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    assert result.stdout.count("Pretrained (") == 1  # the main process reports


def _one_line(tmp_path, monkeypatch, *flags) -> str:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", str(RECIPE), "--output_dir", str(tmp_path / "out"), *flags])
    message = str(exit_info.value.code)
    assert message.startswith("vit-ft pretrain: ") and "\n" not in message
    return message


def test_a_folder_without_a_decodable_image_is_one_line(tmp_path, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    message = _one_line(tmp_path, monkeypatch, "--dataset_name", "None", "--train_dir", str(folder))
    assert f"train_dir={str(folder)!r} holds no decodable image" in message


@pytest.mark.parametrize("ratio", ["0", "1", "1.5"])
def test_a_mask_ratio_outside_0_1_is_one_line(tmp_path, monkeypatch, ratio):
    message = _one_line(tmp_path, monkeypatch, "--mask_ratio", ratio)
    assert f"mask_ratio={float(ratio)} must be between 0 and 1 (exclusive)" in message


def test_a_decoder_wider_than_the_encoder_is_one_line_with_the_limit(tmp_path, monkeypatch):
    message = _one_line(tmp_path, monkeypatch, "--decoder_hidden_size", "128")
    assert (
        "decoder_hidden_size=128 is wider than the encoder (hidden_size=96): the limit is the encoder's width, 96"
        in message
    )


def test_a_lora_adapter_as_the_source_is_one_line(tmp_path, monkeypatch):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    message = _one_line(tmp_path, monkeypatch, "--preset", "None", "--model_name_or_path", str(adapter))
    assert f"{adapter} is a LoRA adapter, which pretraining cannot start from: merge it first" in message
