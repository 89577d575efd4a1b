"""Every shipped recipe parses and builds, and says on its first lines how to run it."""

import json
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from torch.utils.flop_counter import FlopCounterMode

from vit_ft import ViTConfig, ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.data.transforms import build_eval_transform, build_train_transform
from vit_ft.recipe import read_recipe
from vit_ft.training.distillation import DISTILLATION_TYPES
from vit_ft.training.lora import lora_config
from vit_ft.training.mixing import BatchMixer

ROOT = Path(__file__).resolve().parent.parent
TRAINING_RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")
ACCELERATE_CONFIGS = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml"))


def test_the_recipes_are_found():
    names = {str(p.relative_to(ROOT / "recipes")) for p in TRAINING_RECIPES}
    assert {"full_finetune/digits.yaml", "full_finetune/vit_base_in21k_cifar10.yaml", "lora/digits_low_quality.yaml",
            "full_finetune/digits_low_quality.yaml", "lora/vit_base_in21k_food101.yaml", "distill/digits_tiny.yaml",
            "distill/deit_base_to_tiny.yaml"} <= names  # fmt: skip
    assert {p.stem for p in ACCELERATE_CONFIGS} == {"single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero2"}


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_training_recipe_parses_and_builds(recipe):
    relative = recipe.relative_to(ROOT)
    assert recipe.read_text().splitlines()[0] == f"# vit-ft train {relative}"
    # GPU recipes ask for bf16, which TrainingArguments refuses on a machine without a GPU.
    model_args, data_args, args = read_recipe(recipe, ["--use_cpu", "true", "--bf16", "false"])
    assert args.output_dir and (data_args.dataset_name or data_args.train_dir)
    overrides = json.loads(model_args.model_overrides or "{}")
    with torch.device("meta"):
        if model_args.preset:
            config = ViTConfig.from_preset(model_args.preset, num_labels=10, **overrides)
        else:
            assert model_args.model_name_or_path
            config = ViTConfig(num_labels=10, **overrides)  # the Hub checkpoint's architecture: ViT-B/16
        model = ViTForImageClassification(config)
    if model_args.peft_method:
        assert recipe.parent.name == "lora" and lora_config(model, model_args).target_modules
    if args.teacher_model_name_or_path:
        assert recipe.parent.name == "distill" and args.distillation_type in DISTILLATION_TYPES
    processor = default_processor(config.image_size)
    build_train_transform(processor, args)
    build_eval_transform(processor)
    BatchMixer(10, args.mixup_alpha, args.cutmix_alpha, args.label_smoothing_factor)


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_loads_and_shows_its_command(config):
    header = []
    for line in config.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert any(f"accelerate launch --config_file recipes/accelerate/{config.name}" in line for line in header)
    loaded = load_config_from_file(str(config))
    assert loaded.mixed_precision == "bf16"


def _forward_flops(model_args) -> int:
    config = ViTConfig.from_preset(model_args.preset, num_labels=10, **json.loads(model_args.model_overrides))
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        ViTForImageClassification(config).eval()(pixel_values=torch.empty(1, 3, config.image_size, config.image_size))
    return counter.get_total_flops()


def test_the_digits_student_costs_at_most_a_quarter_of_its_teachers_flops():
    teacher, _, teacher_args = read_recipe(ROOT / "recipes" / "full_finetune" / "digits.yaml", ["--use_cpu", "true"])
    student, _, args = read_recipe(ROOT / "recipes" / "distill" / "digits_tiny.yaml", ["--use_cpu", "true"])
    assert args.teacher_model_name_or_path == teacher_args.output_dir
    ratio = _forward_flops(student) / _forward_flops(teacher)
    assert 0.15 < ratio <= 0.25  # 7.3 against 38.5 MFLOPs, as the recipe says
    token_student = json.loads(student.model_overrides) | {"use_distillation_token": True}
    student.model_overrides = json.dumps(token_student)
    assert _forward_flops(student) / _forward_flops(teacher) <= 0.25
