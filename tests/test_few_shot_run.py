"""Few-shot runs through the real `vit-ft` command: K images per class recorded and scored, an MAE checkpoint
fine-tuned, and a linear probe that trains the head alone."""

import json
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from vit_ft.data.readers import load_digits_dataset
from vit_ft.output_dir import MODEL_WEIGHTS, TRAIN_SUBSET
from vit_ft.recipe import read_recipe
from vit_ft.train import build_trainer

from .checkpoints.test_mae_checkpoints import MAE_TINY, _randomised
from .test_cli import vit_ft_cli

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = (
    "dataset_name: digits\ntrain_val_split: 0.1\nseed: 0\nper_device_train_batch_size: 16\nmax_steps: 2\n"
    "horizontal_flip: false\nreport_to: none\nuse_cpu: true\noutput_dir: run\n"
)
TINY_PRESET = (
    "preset: vit_tiny_patch16_224\nmodel_overrides: {image_size: 8, patch_size: 2, hidden_size: 16, "
    "num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32}\n"
)


@pytest.mark.slow
def test_a_few_shot_run_records_its_images_and_evaluate_scores_them(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_PRESET + TINY_RUN + "train_samples_per_class: 3\n")
    result = vit_ft_cli("train", "tiny.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "run" / TRAIN_SUBSET).read_text())
    assert record["train_samples_per_class"] == 3 and record["seed"] == 0 and record["images"] == 30
    raw = load_digits_dataset()["train"]
    assert {name: [raw[row]["label"] for row in rows] for name, rows in record["rows"].items()} == {
        str(digit): [digit] * 3 for digit in range(10)
    }
    result = vit_ft_cli("evaluate", "--model", "run", "--dataset_name", "digits", "--split", "train", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["examples"] == 30
    assert scores["carved_from_train"]["train_samples_per_class"] == 3 and scores["carved_from_train"]["seed"] == 0


@pytest.mark.slow
def test_vit_ft_train_fine_tunes_a_saved_vit_mae_folder(tmp_path):
    source = _randomised(
        transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**MAE_TINY, "image_size": 8, "patch_size": 2}))
    )
    source.save_pretrained(tmp_path / "mae")
    (tmp_path / "mae.yaml").write_text("model_name_or_path: mae\nmodel_overrides: {pooling: mean}\n" + TINY_RUN)
    result = vit_ft_cli("train", "mae.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sum("dropped the MAE decoder" in line for line in result.stderr.splitlines()) == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_type"] == "vit_ft" and len(config["id2label"]) == 10 and config["pooling"] == "mean"
    weights = load_file(tmp_path / "run" / MODEL_WEIGHTS)
    assert weights["classifier.weight"].shape == (10, 32) and not any(key.startswith("decoder") for key in weights)


def test_the_linear_probe_recipe_trains_the_head_alone(tmp_path, monkeypatch):
    (tmp_path / "base").mkdir()
    source = _randomised(
        transformers.ViTMAEModel(transformers.ViTMAEConfig(**{**MAE_TINY, "image_size": 8, "patch_size": 2}))
    )
    source.save_pretrained(tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    flags = [
        "--model_name_or_path",
        "base",
        "--output_dir",
        "probe",
        "--max_steps",
        "3",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        "--train_samples_per_class",
        "4",
    ]
    recipe = read_recipe(ROOT / "recipes" / "full_finetune" / "digits_linear_probe.yaml", flags)
    trainer, data, _ = build_trainer(recipe)
    assert len(data["train"]) == 40
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    changed = {name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"classifier.weight", "classifier.bias"}
