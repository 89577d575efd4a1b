"""`vit-ft train` end to end on the built-in digits: outputs, EMA, resume."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "full_finetune" / "digits.yaml"
QUICK = [
    "--max_train_samples",
    "160",
    "--max_eval_samples",
    "48",
    "--per_device_train_batch_size",
    "16",
    "--logging_steps",
    "1",
    "--disable_tqdm",
    "true",
    "--save_total_limit",
    "None",
]


def _train(output_dir, *flags):
    return run_training(read_recipe(RECIPE, [*QUICK, "--output_dir", str(output_dir), *flags]))


@pytest.mark.slow
def test_train_writes_model_metrics_plots_and_ema(tmp_path):
    results = _train(
        tmp_path,
        "--max_steps",
        "6",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "3",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--mixup_alpha",
        "0.8",
        "--cutmix_alpha",
        "1.0",
        "--layer_decay",
        "0.75",
        "--ema_decay",
        "0.9",
    )
    files = {path.name for path in tmp_path.iterdir()}
    expected = {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "modeling_vit_ft.py",
        "all_results.json",
        "training_curves.png",
        "confusion_matrix.png",
        "attention_maps.png",
        "vit_ft_recipe.yaml",
        "checkpoint-3",
        "checkpoint-6",
    }
    assert expected <= files
    all_results = json.loads((tmp_path / "all_results.json").read_text())
    assert 0.0 <= all_results["eval_accuracy"] <= 1.0 and 0.0 <= all_results["test_accuracy"] <= 1.0
    assert all_results["test_accuracy"] == results["test_accuracy"]
    assert all_results["train_trainable_parameters"] == sum(
        p.numel() for p in AutoModelForImageClassification.from_pretrained(tmp_path).parameters()
    )
    # The saved model is the EMA of the weights, as in the last checkpoint's ema.safetensors.
    ema = load_file(str(tmp_path / "checkpoint-6" / "ema.safetensors"))
    saved = load_file(str(tmp_path / "model.safetensors"))
    trained = load_file(str(tmp_path / "checkpoint-6" / "model.safetensors"))
    name = "vit.layers.0.mlp.fc1.weight"
    torch.testing.assert_close(saved[name], ema[f"module.{name}"])
    assert not torch.equal(saved[name], trained[name])
    history = json.loads((tmp_path / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "eval_accuracy" in entry] == [3, 6]


@pytest.mark.slow
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    flags = [
        "--max_steps",
        "8",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--eval_strategy",
        "no",
        "--mixup_alpha",
        "0.5",
        "--ema_decay",
        "0.8",
    ]
    _train(tmp_path / "whole", *flags)
    # A run stopped after step 4 left checkpoint-4 behind; a new process resumes from it, here with dataloader
    # workers: augmentations are seeded per example, so where they run does not change them.
    shutil.copytree(tmp_path / "whole" / "checkpoint-4", tmp_path / "resumed" / "checkpoint-4")
    _train(
        tmp_path / "resumed",
        *flags,
        "--dataloader_num_workers",
        "2",
        "--resume_from_checkpoint",
        str(tmp_path / "resumed" / "checkpoint-4"),
    )
    for name in ("checkpoint-8/model.safetensors", "checkpoint-8/ema.safetensors", "model.safetensors"):
        whole, resumed = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "resumed" / name))
        assert whole.keys() == resumed.keys()
        for key in whole:
            assert torch.equal(whole[key], resumed[key]), f"{name}: {key}"
    fresh = load_file(str(tmp_path / "whole" / "checkpoint-4" / "model.safetensors"))
    assert not torch.equal(
        fresh["classifier.weight"], load_file(str(tmp_path / "whole" / "model.safetensors"))["classifier.weight"]
    )


@pytest.mark.slow
def test_persistent_dataloader_workers_train_as_no_workers_and_resume_exactly(tmp_path):
    # Three epochs of 3 steps, evaluated after each: the later epochs' augmentations must reach workers started in the
    # first, and stochastic depth (the recipe's drop_path_rate 0.05) and MixUp must draw from the same random stream
    # whether the workers persist or not.
    flags = [
        "--max_train_samples",
        "48",
        "--max_steps",
        "9",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--mixup_alpha",
        "0.8",
    ]
    persistent = ["--dataloader_num_workers", "2", "--dataloader_persistent_workers", "true"]
    _train(tmp_path / "none", *flags)
    _train(tmp_path / "persistent", *flags, *persistent)
    # Resumed in epoch 2 of 3: the rest of it from a loader that skips a batch, then epoch 3 from the persistent one.
    shutil.copytree(tmp_path / "none" / "checkpoint-4", tmp_path / "resumed" / "checkpoint-4")
    _train(
        tmp_path / "resumed",
        *flags,
        *persistent,
        "--resume_from_checkpoint",
        str(tmp_path / "resumed" / "checkpoint-4"),
    )
    expected = load_file(str(tmp_path / "none" / "model.safetensors"))
    for run in ("persistent", "resumed"):
        weights = load_file(str(tmp_path / run / "model.safetensors"))
        assert all(torch.equal(expected[key], weights[key]) for key in expected), run

    def logged(run: str) -> list[tuple]:
        history = json.loads((tmp_path / run / "checkpoint-9" / "trainer_state.json").read_text())["log_history"]
        return [(entry["step"], entry.get("loss"), entry.get("eval_loss")) for entry in history]

    assert logged("none") == logged("persistent")
    # Checkpoint 9 is written before the last epoch's evaluation, which all_results.json holds.
    assert [step for step, _, eval_loss in logged("none") if eval_loss is not None] == [3, 6]

    def scores(run: str) -> dict:
        results = json.loads((tmp_path / run / "all_results.json").read_text())
        return {
            name: value
            for name, value in results.items()
            if name.startswith(("eval_", "test_")) and not name.endswith(("runtime", "per_second"))
        }

    assert scores("none") == scores("persistent") == scores("resumed") and "test_loss" in scores("none")


@pytest.mark.slow
def test_bad_images_are_skipped_and_counted_unless_strict(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            for index in range(6):
                Image.new("RGB", (20, 20), (40 * index, 100 if label == "a" else 0, 0)).save(
                    tmp_path / split / label / f"{index}.png"
                )
        (tmp_path / split / "a" / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "train" / "b" / "empty.png").write_bytes(b"")
    Image.new("RGB", (1, 1), (0, 0, 0)).save(tmp_path / "train" / "b" / "pixel.png")  # valid: resized, not skipped
    # One batch per epoch holds every training image, so two steps meet each bad one twice.
    flags = [
        "--dataset_name",
        "None",
        "--train_dir",
        str(tmp_path / "train"),
        "--test_dir",
        str(tmp_path / "test"),
        "--train_val_split",
        "0",
        "--max_steps",
        "2",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--output_dir",
        f"{tmp_path}/out",
        "--per_device_train_batch_size",
        "15",
        "--max_train_samples",
        "None",
    ]
    results = run_training(read_recipe(RECIPE, flags))
    assert results["train_loss"] > 0
    all_results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert all_results["train_skipped_images"] == 4 and all_results["test_skipped_images"] == 1
    # Into a folder of its own: `out` holds the first run, which a second run into it would be refused.
    with pytest.raises(ValueError, match=r"(broken|empty)\.png.*strict_images"):
        run_training(read_recipe(RECIPE, [*flags, "--strict_images", "true", "--output_dir", f"{tmp_path}/strict"]))
    with pytest.raises(FileNotFoundError, match=f"model_name_or_path='{tmp_path}/no_model' is not a directory"):
        run_training(read_recipe(RECIPE, [*flags, "--model_name_or_path", f"{tmp_path}/no_model"]))


@pytest.mark.slow
def test_best_checkpoint_by_accuracy_with_accumulation_and_checkpointing(tmp_path):
    _train(
        tmp_path,
        "--max_steps",
        "5",
        "--gradient_accumulation_steps",
        "2",
        "--gradient_checkpointing",
        "true",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "1",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--load_best_model_at_end",
        "true",
        "--learning_rate",
        "0.01",
    )
    state = json.loads((tmp_path / "checkpoint-5" / "trainer_state.json").read_text())
    accuracies = {entry["step"]: entry["eval_accuracy"] for entry in state["log_history"] if "eval_accuracy" in entry}
    assert sorted(accuracies) == [1, 2, 3, 4, 5]
    best_step = min(step for step, accuracy in accuracies.items() if accuracy == max(accuracies.values()))
    assert state["best_metric"] == max(accuracies.values())
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    best = load_file(str(tmp_path / f"checkpoint-{best_step}" / "model.safetensors"))
    final = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(best[key], final[key]) for key in best)


@pytest.mark.slow
def test_evaluating_during_training_does_not_change_the_trained_weights(tmp_path):
    # Stochastic depth and MixUp draw from the random stream in every training step.
    flags = ["--max_steps", "6", "--save_strategy", "no", "--mixup_alpha", "0.5"]
    overrides = (
        '{"image_size": 16, "patch_size": 2, "hidden_size": 96, "num_hidden_layers": 4, '
        '"num_attention_heads": 4, "intermediate_size": 192, "drop_path_rate": 0.2}'
    )
    _train(tmp_path / "quiet", *flags, "--eval_strategy", "no", "--model_overrides", overrides)
    _train(
        tmp_path / "evaluated", *flags, "--eval_strategy", "steps", "--eval_steps", "2", "--model_overrides", overrides
    )
    quiet = load_file(str(tmp_path / "quiet" / "model.safetensors"))
    evaluated = load_file(str(tmp_path / "evaluated" / "model.safetensors"))
    assert all(torch.equal(quiet[key], evaluated[key]) for key in quiet)
