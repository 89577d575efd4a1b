"""Every shipped recipe parses and builds, and says on its first lines how to run it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from torch.utils.flop_counter import FlopCounterMode

from vit_ft import ViTConfig, ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.data.transforms import build_eval_transform, build_train_transform
from vit_ft.pretrain import build_autoencoder, mae_augmentation, read_pretraining_recipe
from vit_ft.recipe import read_recipe
from vit_ft.training.arguments import DISTILLATION_TYPES
from vit_ft.training.lora import lora_config
from vit_ft.training.mixing import BatchMixer

ROOT = Path(__file__).resolve().parent.parent
TRAINING_RECIPES = sorted(
    p for p in (ROOT / "recipes").rglob("*.yaml") if p.parent.name not in ("accelerate", "pretrain")
)
PRETRAINING_RECIPES = sorted((ROOT / "recipes" / "pretrain").glob("*.yaml"))
ACCELERATE_CONFIGS = sorted((ROOT / "recipes" / "accelerate").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _in_an_empty_folder(tmp_path, monkeypatch):
    # A recipe's relative model paths (outputs/digits) are checked as folders where an outputs/ folder exists, as in
    # a checkout where recipes were run: parse them where none does, as on a new clone.
    monkeypatch.chdir(tmp_path)


def test_the_recipes_are_found():
    names = {str(p.relative_to(ROOT / "recipes")) for p in TRAINING_RECIPES}
    assert {
        "full_finetune/digits.yaml",
        "full_finetune/vit_base_in21k_cifar10.yaml",
        "lora/digits_low_quality.yaml",
        "full_finetune/digits_low_quality.yaml",
        "lora/vit_base_in21k_food101.yaml",
        "distill/digits_tiny.yaml",
        "distill/deit_base_to_tiny.yaml",
        "full_finetune/digits_from_mae.yaml",
    } <= names
    assert {p.name for p in PRETRAINING_RECIPES} >= {"digits_mae.yaml"}
    assert {p.stem for p in ACCELERATE_CONFIGS} == {"single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero2"}


@pytest.mark.parametrize("recipe", TRAINING_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_training_recipe_parses_and_builds(recipe):
    relative = recipe.relative_to(ROOT)
    assert recipe.read_text().splitlines()[0] == f"# vit-ft train {relative}"
    # GPU recipes ask for bf16, which TrainingArguments refuses on a machine without a GPU.
    parsed = read_recipe(recipe, ["--use_cpu", "true", "--bf16", "false"])
    model_args, data_args, args = parsed.model, parsed.data, parsed.training
    assert args.output_dir and (data_args.dataset_name or data_args.train_dir or data_args.train_shards)
    overrides = model_args.model_overrides
    with torch.device("meta"):
        if model_args.preset:
            config = ViTConfig.from_preset(model_args.preset, num_labels=10, **overrides)
        else:
            assert model_args.model_name_or_path
            config = ViTConfig(num_labels=10, **overrides)  # the Hub checkpoint's architecture: ViT-B/16
        model = ViTForImageClassification(config)
    if parsed.lora.enabled:
        assert recipe.parent.name == "lora" and lora_config(model, parsed.lora).target_modules
    if parsed.distillation.enabled:
        assert recipe.parent.name == "distill" and parsed.distillation.distillation_type in DISTILLATION_TYPES
    processor = default_processor(config.image_size)
    build_train_transform(processor, parsed.augmentation)
    build_eval_transform(processor)
    BatchMixer(10, parsed.augmentation.mixup_alpha, parsed.augmentation.cutmix_alpha, args.label_smoothing_factor)


@pytest.mark.parametrize("recipe", PRETRAINING_RECIPES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pretraining_recipe_parses_and_builds(recipe):
    relative = recipe.relative_to(ROOT)
    assert recipe.read_text().splitlines()[0] == f"# vit-ft pretrain {relative}"
    parsed = read_pretraining_recipe(recipe, ["--use_cpu", "true", "--bf16", "false"])
    assert parsed.training.output_dir and (parsed.data.dataset_name or parsed.data.train_dir)
    assert parsed.training.metric_for_best_model == "loss"
    with torch.device("meta"):
        model, processor = build_autoencoder(parsed.model, parsed.masked_autoencoding)
    assert model.config.decoder_hidden_size <= model.config.hidden_size
    assert model.config.mask_ratio == parsed.masked_autoencoding.mask_ratio
    build_train_transform(processor, mae_augmentation(parsed.masked_autoencoding))


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
    config = ViTConfig.from_preset(model_args.preset, num_labels=10, **model_args.model_overrides)
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        ViTForImageClassification(config).eval()(pixel_values=torch.empty(1, 3, config.image_size, config.image_size))
    return counter.get_total_flops()


def test_the_digits_student_costs_at_most_a_quarter_of_its_teachers_flops():
    teacher_recipe = read_recipe(ROOT / "recipes" / "full_finetune" / "digits.yaml", ["--use_cpu", "true"])
    student_recipe = read_recipe(ROOT / "recipes" / "distill" / "digits_tiny.yaml", ["--use_cpu", "true"])
    assert student_recipe.distillation.teacher_model_name_or_path == teacher_recipe.training.output_dir
    teacher, student = teacher_recipe.model, student_recipe.model
    ratio = _forward_flops(student) / _forward_flops(teacher)
    assert 0.15 < ratio <= 0.25  # 7.3 against 38.5 MFLOPs, as the recipe says
    student.model_overrides = student.model_overrides | {"use_distillation_token": True}
    assert _forward_flops(student) / _forward_flops(teacher) <= 0.25


# Configuration that checks itself before any I/O


@pytest.fixture
def no_io(monkeypatch):
    """Fails the test if a run gets as far as opening a dataset or a checkpoint."""
    monkeypatch.setattr("vit_ft.train.load_image_datasets", pytest.fail)
    monkeypatch.setattr("vit_ft.checkpoints.loading.checkpoint_model", pytest.fail)


def _train(recipe: Path, *flags: str) -> str:
    """Runs `vit-ft train` and returns the one line it exits with."""
    from vit_ft.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(recipe), *flags])
    return str(exit_info.value.code)


def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"dataset_name: digits\npreset: vit_tiny_patch16_224\noutput_dir: {tmp_path}/out\n{text}")
    return path


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("learning_rate: [1, 2]", "learning_rate is [1, 2] (list), but it takes a number."),
        ("per_device_train_batch_size: 1.5", "per_device_train_batch_size is 1.5 (float), but it takes an integer."),
        ("eval_strategy: yes", "eval_strategy is True (bool), but it takes one of 'no', 'steps', 'epoch'. YAML reads"),
        ("horizontal_flip: maybe", "horizontal_flip is 'maybe' (str), but it takes true or false."),
        ("mixup_alpha: null", "mixup_alpha is None (NoneType), but it takes a number."),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_file_field_and_type(tmp_path, capsys, no_io, line, expected):
    recipe = _recipe(tmp_path, line + "\n")
    message = _train(recipe)
    assert message.startswith(f"vit-ft train: {recipe}: {expected}")
    assert "\n" not in message and capsys.readouterr().err == ""  # no usage dump


def test_yaml_booleans_and_numbers_become_what_the_user_meant(tmp_path):
    recipe = read_recipe(
        _recipe(
            tmp_path,
            "eval_strategy: no\nsave_strategy: off\nlearning_rate: 1e-3\n"
            "per_device_train_batch_size: 32.0\ndataset_config_name: 2017\n",
        )
    )
    assert (recipe.training.eval_strategy.value, recipe.training.save_strategy.value) == ("no", "no")
    assert recipe.training.learning_rate == 0.001  # YAML 1.1 reads 1e-3 as text
    assert recipe.training.per_device_train_batch_size == 32 and recipe.data.dataset_config_name == "2017"


def test_a_bad_flag_value_is_one_line(tmp_path, capsys, no_io):
    message = _train(_recipe(tmp_path, ""), "--per_device_train_batch_size", "many")
    assert message.startswith("vit-ft train: the command line: argument --per_device_train_batch_size")
    assert "invalid int value: 'many'" in message
    assert "\n" not in message and capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "length", [["--num_train_epochs", "-1"], ["--num_train_epochs", "0"], ["--max_steps", "0"], ["--max_steps", "-5"]]
)
def test_a_run_that_trains_needs_a_positive_length(tmp_path, no_io, length):
    assert f"{length[0][2:]}=" in _train(_recipe(tmp_path, ""), *length)


def test_model_overrides_is_a_mapping_or_json_and_unknown_keys_name_the_closest_field(tmp_path):
    mapping = read_recipe(_recipe(tmp_path, "model_overrides: {image_size: 16, patch_size: 2}\n"))
    json_text = read_recipe(_recipe(tmp_path, 'model_overrides: \'{"image_size": 16, "patch_size": 2}\'\n'))
    assert mapping.model.model_overrides == json_text.model.model_overrides == {"image_size": 16, "patch_size": 2}
    with pytest.raises(
        ValueError,
        match="model_overrides sets 'drop_path', which is not a ViTConfig field. Did you mean 'drop_path_rate'",
    ):
        read_recipe(_recipe(tmp_path, "model_overrides: {drop_path: 0.1}\n"))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--lora_bias", "some"], "lora_bias='some'"),
        (["--auto_augment", "autoaugment"], "auto_augment='autoaugment'"),
        (["--teacher_model_name_or_path", "org/teacher", "--teacher_dtype", "int8"], "teacher_dtype='int8'"),
        (["--distillation_type", "medium"], "distillation_type='medium'"),
        (["--peft_method", "lora"], "peft_method: lora adapts a trained model"),
        (["--student_from_teacher", "true"], "student_from_teacher needs teacher_model_name_or_path"),
        (["--model_name_or_path", "org/model"], "Set one of model_name_or_path"),
        (["--preset", "vit_tiny_patch16"], "preset='vit_tiny_patch16' is not a known architecture. Did you mean"),
        (
            [
                "--ema_decay",
                "0.99",
                "--load_best_model_at_end",
                "true",
                "--eval_strategy",
                "epoch",
                "--save_strategy",
                "epoch",
            ],
            "ema_decay with load_best_model_at_end",
        ),
        (["--image_corruptions", "fog"], "image_corruptions='fog', corruption_severity=3: Unknown corruption 'fog'"),
        (["--model_overrides", '{"hidden": 3}'], "Did you mean 'hidden_act'"),
    ],
)
def test_refusals_come_before_any_data_or_checkpoint_is_opened(tmp_path, no_io, flags, expected):
    assert expected in _train(_recipe(tmp_path, ""), *flags)


def test_every_shipped_recipe_field_has_the_type_its_group_declares():
    for recipe in TRAINING_RECIPES:
        read_recipe(recipe, ["--use_cpu", "true", "--bf16", "false"])  # raises on a value of the wrong type


def test_a_recipe_saved_before_the_feature_groups_still_parses():
    # Written by vit-ft at ef602b1 (three dataclasses, model_overrides as JSON text) for the digits student.
    recipe = read_recipe(Path(__file__).parent / "fixtures" / "recipe_saved_at_ef602b1.yaml", ["--use_cpu", "true"])
    assert recipe.model.model_overrides["hidden_size"] == 48 and recipe.lora.lora_target == "attention"
    assert (recipe.distillation.teacher_model_name_or_path, recipe.distillation.distillation_type) == (
        "outputs/digits",
        "hard",
    )


# What parsing a recipe must not import: vit-ft's export and LoRA code, ONNX, and the Hub push. Two of the names one
# would list are left out because parsing cannot avoid them: peft, which transformers' TrainingArguments imports
# (transformers.trainer_utils imports it whenever it is installed), and vit_ft.model.modeling_vit_ft, which the model
# package loads on import to register the models with the Auto classes, and which ModelArguments needs for the
# presets and ViTConfig's fields.
NOT_IMPORTED_BY_PARSING = ("onnx", "onnxruntime", "vit_ft.export", "vit_ft.training.lora", "vit_ft.hub.push")


def test_parsing_a_recipe_imports_no_export_lora_or_push_code():
    # In a fresh interpreter: in this one, other tests have imported everything already.
    code = textwrap.dedent(f"""
        import json, sys
        from vit_ft.recipe import read_recipe
        read_recipe({str(ROOT / "recipes" / "full_finetune" / "digits.yaml")!r})
        print(json.dumps(sorted(name for name in {NOT_IMPORTED_BY_PARSING!r} if name in sys.modules)))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
