"""The README's quickstart, run as written in a new folder: its commands, in order, through a shell, with the only
change a short training (the whole recipe takes minutes)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHORT_TRAINING = "--max_steps 30 --eval_strategy no --save_strategy no"


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def as_run_here(command: str) -> str:
    """The command with the repository's recipes and scripts found from any folder, and training kept short."""
    command = command.replace("recipes/", f"{REPO}/recipes/").replace("scripts/", f"{REPO}/scripts/")
    if command.startswith("vit-ft train"):
        command += f" {SHORT_TRAINING}"
    return command


def test_the_quickstart_lists_train_samples_predict_explain_and_export():
    programs = [" ".join(command.split()[:2]) for command in quickstart_commands()]
    assert programs == [
        "vit-ft train",
        "python scripts/write_sample_images.py",
        "vit-ft predict",
        "vit-ft explain",
        "vit-ft export",
        "vit-ft predict",
    ]


@pytest.mark.slow
def test_the_readme_quickstart_runs_as_written(tmp_path):
    bin_dir = str(Path(sys.executable).parent)  # `vit-ft` and `python` of the environment the tests run in
    environment = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    outputs = []
    for command in quickstart_commands():
        result = subprocess.run(
            ["bash", "-c", as_run_here(command)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (command, result.stderr[-2000:])
        outputs.append(result.stdout)

    images = sorted((tmp_path / "digit_images").glob("*.png"))
    assert [image.name.split("_")[0] for image in images] == ["0", "1", "2", "3", "4"]  # one of each class, named
    # PyTorch with --top_k 3, then the int8 export in ONNX Runtime with the default top 5.
    for predicted, top_k in ((outputs[2], 3), (outputs[5], 5)):
        answers = [json.loads(line) for line in predicted.splitlines()]
        assert [answer["image"] for answer in answers] == [f"digit_images/{image.name}" for image in images]
        assert all(len(answer["predictions"]) == top_k for answer in answers), predicted
    assert len(list((tmp_path / "digit_maps").glob("*.png"))) == 5
    assert (tmp_path / "outputs" / "digits_onnx" / "onnx" / "model_quantized.onnx").is_file()
    assert json.loads((tmp_path / "outputs" / "digits" / "all_results.json").read_text())["test_accuracy"] > 0.1


@pytest.mark.slow
def test_the_own_data_recipe_trains_on_class_folders(tmp_path):
    """README "Fine-tune on your own data": its CPU command, on a tiny transformers ViT in place of ViT-B."""
    from PIL import Image
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    checkpoint = tmp_path / "tiny-vit"
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    ViTForImageClassification(config).save_pretrained(checkpoint)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(checkpoint)
    for split, count in (("train", 6), ("test", 2)):
        for label, grey in (("cat", 40), ("dog", 200)):
            folder = tmp_path / "my_images" / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                Image.new("RGB", (40, 30), (grey, grey, grey)).save(folder / f"{index:03d}.jpg")

    command = as_run_here(
        "vit-ft train recipes/full_finetune/image_folder.yaml --train_dir my_images/train --test_dir my_images/test "
        "--output_dir outputs/my_model --use_cpu true --bf16 false --per_device_train_batch_size 8 "
        f"--model_name_or_path {checkpoint} --dataloader_num_workers 0"
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "vit_ft.cli", *command.split()[1:]],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model = tmp_path / "outputs" / "my_model"
    assert json.loads((model / "config.json").read_text())["id2label"] == {"0": "cat", "1": "dog"}
    assert "test_accuracy" in json.loads((model / "all_results.json").read_text())
