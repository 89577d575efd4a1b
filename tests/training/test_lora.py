"""LoRA through peft: targets, what trains, the saved adapter, reloading, merging, the CLI, several processes."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft.tuners.lora import LoraLayer
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, pipeline

from tests.test_multiprocess import launch
from vit_ft import ViTConfig, ViTForImageClassification, load_model
from vit_ft.checkpoints.loading import default_processor, merge_adapter
from vit_ft.cli import main
from vit_ft.recipe import read_recipe
from vit_ft.train import build_trainer, run_training
from vit_ft.training.arguments import LoraArguments
from vit_ft.training.lora import LORA_TARGETS, add_lora, target_modules

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "full_finetune" / "digits.yaml"
DIGITS = [str(digit) for digit in range(10)]


def digits_model(**overrides) -> ViTForImageClassification:
    """A small model for the digits recipe's 16-pixel images, labelled as the built-in digits."""
    fields = dict(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        id2label=dict(enumerate(DIGITS)),
        label2id={name: i for i, name in enumerate(DIGITS)},
    )
    return ViTForImageClassification(ViTConfig(**{**fields, **overrides}))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A trained-looking base model: random weights, saved with its image processor."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("base")
    digits_model().save_pretrained(path)
    default_processor(16).save_pretrained(path)
    return path


def lora_flags(base: Path, output_dir: Path, *flags: str) -> list[str]:
    return [
        "--preset",
        "None",
        "--model_overrides",
        "None",
        "--model_name_or_path",
        str(base),
        "--peft_method",
        "lora",
        "--output_dir",
        str(output_dir),
        "--max_train_samples",
        "96",
        "--max_eval_samples",
        "40",
        "--per_device_train_batch_size",
        "16",
        "--learning_rate",
        "0.05",
        "--warmup_steps",
        "0",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        "--logging_steps",
        "1",
        *flags,
    ]


def lora_trainer(base: Path, output_dir: Path, *flags: str):
    return build_trainer(read_recipe(RECIPE, lora_flags(base, output_dir, *flags)))


def logits(model, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(pixel_values=pixels).logits


@pytest.mark.parametrize("target", [*LORA_TARGETS, "fc2,k_proj", "vit.layers.1.mlp.fc1"])
def test_each_target_adapts_the_modules_it_names_and_no_others(target):
    model = digits_model()
    names = {
        "qv": {"q_proj", "v_proj"},
        "attention": {"q_proj", "k_proj", "v_proj", "o_proj"},
        "all-linear": {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"},
        "fc2,k_proj": {"fc2", "k_proj"},
    }
    expected = {
        f"vit.layers.{i}.{'mlp' if name.startswith('fc') else 'attention'}.{name}"
        for i in (0, 1)
        for name in names.get(target, ())
    } or {"vit.layers.1.mlp.fc1"}
    peft_model = add_lora(model, LoraArguments(peft_method="lora", lora_target=target), "base")
    adapted = {
        name.removeprefix("base_model.model.")
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer)
    }
    assert adapted == expected


def test_a_target_that_matches_nothing_lists_the_linear_layers():
    with pytest.raises(ValueError, match=r"'query'.*vit\.layers\.N\.attention\.q_proj.*vit\.layers\.N\.mlp\.fc2"):
        target_modules(digits_model(), "query,value")
    with pytest.raises(ValueError, match="head 'classifier'"):
        target_modules(digits_model(), "q_proj,classifier")


def test_lora_needs_a_trained_model_and_excludes_freeze_backbone_and_pruned_students(tmp_path, monkeypatch):
    # Refused when the recipe is read, before any data or checkpoint is opened.
    monkeypatch.setattr("vit_ft.train.load_image_datasets", pytest.fail)
    monkeypatch.setattr("vit_ft.checkpoints.loading.checkpoint_model", pytest.fail)
    flags = ["--peft_method", "lora", "--output_dir", str(tmp_path)]
    with pytest.raises(ValueError, match="model_name_or_path"):
        read_recipe(RECIPE, flags)
    with pytest.raises(ValueError, match="freeze_backbone"):
        read_recipe(RECIPE, [*flags, "--preset", "None", "--model_name_or_path", "b/c", "--freeze_backbone", "true"])
    with pytest.raises(ValueError, match="student_from_teacher"):
        read_recipe(
            RECIPE,
            [
                *flags,
                "--preset",
                "None",
                "--teacher_model_name_or_path",
                "t/t",
                "--student_from_teacher",
                "true",
                "--student_layers",
                "0",
            ],
        )
    with pytest.raises(ValueError, match="lora_bias='some'"):
        read_recipe(RECIPE, [*flags, "--lora_bias", "some"])


def test_the_distillation_head_is_trained_and_saved_in_full():
    model = digits_model(use_distillation_token=True)
    peft_model = add_lora(model, LoraArguments(peft_method="lora"), "base")
    trainable = {name for name, parameter in peft_model.named_parameters() if parameter.requires_grad}
    assert "base_model.model.distillation_classifier.modules_to_save.default.weight" in trainable
    assert "base_model.model.classifier.modules_to_save.default.weight" in trainable


# Trainable counts by hand, for 2 blocks of width 32 (MLP 64), rank 8 and a 10-class head (32 * 10 + 10 = 330):
# q_proj and v_proj take A (8 x 32) and B (32 x 8), 512 each: 2 * 2 * 512 + 330 = 2378. With all-linear, DoRA
# (a magnitude per output) and lora_only biases, a block adds 4 * (512 + 32 + 32) for attention and
# (768 + 64 + 64) + (768 + 32 + 32) for fc1 and fc2: 4032 a block, 2 * 4032 + 330 = 8394.
@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, expected_trainable",
    [
        ([], 2378),
        (
            [
                "--lora_target",
                "all-linear",
                "--mixup_alpha",
                "0.8",
                "--cutmix_alpha",
                "1.0",
                "--gradient_accumulation_steps",
                "2",
                "--gradient_checkpointing",
                "true",
                "--bf16",
                "true",
                "--use_dora",
                "true",
                "--lora_bias",
                "lora_only",
            ],
            8394,
        ),
    ],
    ids=["plain", "mixing-accumulation-checkpointing-bf16-dora"],
)
def test_training_changes_every_lora_parameter_and_the_head_and_nothing_else(
    base_dir, tmp_path, flags, expected_trainable
):
    trainer, _, _ = lora_trainer(base_dir, tmp_path, "--max_steps", "3", *flags)
    before = {name: parameter.detach().clone() for name, parameter in trainer.model.named_parameters()}
    trainer.train()
    trainable = {name for name, parameter in trainer.model.named_parameters() if parameter.requires_grad}
    assert sum(before[name].numel() for name in trainable) == expected_trainable
    for name, parameter in trainer.model.named_parameters():
        changed = not torch.equal(before[name], parameter.detach())
        assert changed == (name in trainable), name
    assert any("classifier.modules_to_save" in name for name in trainable)
    assert all("lora_" in name or "modules_to_save" in name or name.endswith(".bias") for name in trainable)


@pytest.mark.slow
def test_the_saved_adapter_holds_the_head_and_reloads_with_identical_logits(base_dir, tmp_path):
    trainer, data, _ = lora_trainer(base_dir, tmp_path / "adapter", "--max_steps", "4")
    trainer.train()
    trainer.save_model()
    files = {path.name for path in (tmp_path / "adapter").iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "vit_ft_adapter.json",
        "preprocessor_config.json",
        "vit_ft_recipe.yaml",
    } <= files
    assert "model.safetensors" not in files  # the adapter only: a few MB per task, not a copy of the base
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(base_dir)
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    base_head = load_file(str(base_dir / "model.safetensors"))["classifier.weight"]
    head = saved["base_model.model.classifier.weight"]
    assert not torch.equal(head, base_head)
    trained = trainer.model.base_model.model.classifier.modules_to_save["default"].weight
    torch.testing.assert_close(head, trained.detach(), rtol=0, atol=0)

    pixels = torch.randn(5, 3, 16, 16)
    reloaded = load_model(str(tmp_path / "adapter"))
    torch.testing.assert_close(logits(reloaded, pixels), logits(trainer.model, pixels), rtol=0, atol=0)

    # Merged: a plain vit_ft model, equal to base plus adapter, that Auto classes and pipeline load.
    merge_adapter(str(tmp_path / "adapter"), str(tmp_path / "merged"))
    merged = AutoModelForImageClassification.from_pretrained(tmp_path / "merged")
    assert type(merged) is ViTForImageClassification
    torch.testing.assert_close(logits(merged, pixels), logits(reloaded, pixels), rtol=0, atol=1e-5)
    classifier = pipeline("image-classification", model=str(tmp_path / "merged"))
    scores = classifier(Image.new("RGB", (8, 8), (200, 10, 10)), top_k=10)
    assert sorted(score["label"] for score in scores) == DIGITS


@pytest.mark.slow
def test_cli_evaluate_predict_and_merge_take_an_adapter(base_dir, tmp_path, capsys):
    results = run_training(read_recipe(RECIPE, lora_flags(base_dir, tmp_path / "adapter", "--max_steps", "3")))
    adapter = str(tmp_path / "adapter")
    card = (tmp_path / "adapter" / "README.md").read_text()  # vit-ft's card, not peft's template
    assert "library_name: peft" in card and "load_model(" in card
    main(
        [
            "evaluate",
            "--model",
            adapter,
            "--dataset_name",
            "digits",
            "--train_val_split",
            "0.1",
            "--max_eval_samples",
            "40",
            "--output",
            str(tmp_path / "eval.json"),
        ]
    )
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["clean"]["accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-9)
    Image.new("RGB", (8, 8), (250, 250, 250)).save(tmp_path / "white.png")
    capsys.readouterr()
    main(["predict", "--model", adapter, "--top_k", "3", str(tmp_path / "white.png")])
    predicted = json.loads(capsys.readouterr().out.splitlines()[-1])
    merged = load_model(adapter, merge=True)
    expected = logits(
        merged,
        default_processor(16)(Image.open(tmp_path / "white.png").convert("RGB"), return_tensors="pt")["pixel_values"],
    )
    assert predicted["predictions"][0]["label"] == DIGITS[int(expected.argmax())]
    main(["merge-lora", "--adapter", adapter, "--output", str(tmp_path / "merged")])
    assert (tmp_path / "merged" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_moved_base_is_reported_with_where_it_looked_and_base_model_fixes_it(base_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(base_dir, base)
    run_training(read_recipe(RECIPE, lora_flags(base, tmp_path / "adapter", "--max_steps", "1")))
    base.rename(tmp_path / "moved")
    with pytest.raises(OSError, match=rf"looked for '{base}' as a local directory.*--base_model"):
        load_model(str(tmp_path / "adapter"))
    assert isinstance(
        load_model(str(tmp_path / "adapter"), base_model=str(tmp_path / "moved"), merge=True),
        ViTForImageClassification,
    )


@pytest.mark.slow
def test_an_adapter_for_other_labels_than_the_data_is_refused_by_name(base_dir, tmp_path):
    run_training(read_recipe(RECIPE, lora_flags(base_dir, tmp_path / "adapter", "--max_steps", "1")))
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / label / "0.png")
    with pytest.raises(SystemExit, match=r"class 0 is '0' for the model, 'cat' in the data"):
        main(["evaluate", "--model", str(tmp_path / "adapter"), "--test_dir", str(tmp_path / "images")])


@pytest.mark.slow
def test_lora_under_accelerate_launch_with_two_processes(base_dir, tmp_path):
    events = launch(
        tmp_path,
        *lora_flags(
            base_dir,
            tmp_path / "out",
            "--max_steps",
            "3",
            "--max_eval_samples",
            "45",
            "--per_device_eval_batch_size",
            "16",
        ),
    )
    saves = {rank: [event for event in events[rank] if event["event"] == "save"] for rank in (0, 1)}
    assert saves[1] == []
    saved = load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    assert any("lora_B" in key for key in saved) and "base_model.model.classifier.weight" in saved
    assert all(not torch.equal(value, torch.zeros_like(value)) for key, value in saved.items() if "lora_B" in key)
    assert json.loads((tmp_path / "out" / "all_results.json").read_text())["train_trainable_parameters"] < 20_000


@pytest.mark.slow
def test_lora_on_a_transformers_checkpoint_converts_the_base_on_load(tmp_path):
    import transformers

    labels = {"id2label": dict(enumerate(DIGITS)), "label2id": {name: i for i, name in enumerate(DIGITS)}}
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        **labels,
    )
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "transformers_vit")
    default_processor(16).save_pretrained(tmp_path / "transformers_vit")
    trainer, _, _ = lora_trainer(tmp_path / "transformers_vit", tmp_path / "adapter", "--max_steps", "2")
    trainer.train()
    trainer.save_model()
    pixels = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(
        logits(load_model(str(tmp_path / "adapter")), pixels), logits(trainer.model, pixels), rtol=0, atol=0
    )
