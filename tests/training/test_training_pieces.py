"""The pieces of `vit-ft train`: transforms, batch mixing, optimizer groups, recipes."""

import pytest
import torch
from PIL import Image
from transformers import DeiTImageProcessor, ViTImageProcessor

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.data.arguments import AugmentationArguments
from vit_ft.data.transforms import ExampleTransform, build_eval_transform, build_train_transform, collate_images
from vit_ft.recipe import read_recipe, save_resolved_recipe
from vit_ft.training.arguments import ViTTrainingArguments
from vit_ft.training.mixing import BatchMixer
from vit_ft.training.optimization import layer_id, parameter_groups
from vit_ft.training.trainer import ViTTrainer


def _args(tmp_path, **fields) -> ViTTrainingArguments:
    return ViTTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, **fields)


def test_the_training_group_checks_its_push_to_hub_fields_itself(tmp_path, monkeypatch):
    # Without a recipe around it: the checks sit with the group, not with the Hub code that pushes.
    with pytest.raises(ValueError, match=r"hub_model_id='tester/digits/push' is not a valid Hub repo id"):
        _args(tmp_path, push_to_hub=True, hub_model_id="tester/digits/push")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(ValueError, match="push_to_hub: true needs a Hub token"):
        _args(tmp_path, push_to_hub=True, hub_model_id="tester/digits-push")
    assert _args(tmp_path, push_to_hub=True, hub_model_id="tester/digits-push", hub_token="hf_x").hub_token == "hf_x"
    assert not _args(tmp_path, hub_model_id="tester/digits/push").push_to_hub  # checked only when pushing


def test_transforms_size_and_normalise_from_the_processor(tmp_path):
    processor = ViTImageProcessor(size={"height": 24, "width": 24}, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    image = Image.new("RGB", (40, 30), (255, 255, 255))
    evaluated = build_eval_transform(processor)(image)
    assert evaluated.shape == (3, 24, 24)
    torch.testing.assert_close(evaluated, torch.full((3, 24, 24), 2.0))  # (1 - 0.5) / 0.25
    train = build_train_transform(processor, AugmentationArguments(auto_augment="randaugment", random_erasing=1.0))
    assert train(image).shape == (3, 24, 24)
    deit = DeiTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 28, "width": 28})
    assert build_eval_transform(deit)(image).shape == (3, 28, 28)
    assert build_train_transform(deit, AugmentationArguments())(image).shape == (3, 28, 28)
    with pytest.raises(ValueError, match="auto_augment='autoaugment'"):
        AugmentationArguments(auto_augment="autoaugment")


def test_undecodable_images_are_skipped_or_raise():
    transform = ExampleTransform(build_eval_transform(ViTImageProcessor(size={"height": 8, "width": 8})))
    good = {"bytes": None, "path": None}
    broken = {"bytes": b"not an image", "path": "photos/broken.jpg"}
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (9, 9)).save(buffer, format="PNG")
    good["bytes"] = buffer.getvalue()
    batch = transform({"image": [good, broken, good], "label": [1, 2, 3]})
    assert batch["pixel_values"][1] is None
    examples = [dict(pixel_values=p, labels=y) for p, y in zip(batch["pixel_values"], batch["labels"])]
    collated = collate_images(examples)
    assert collated["pixel_values"].shape == (2, 3, 8, 8) and collated["labels"].tolist() == [1, 3]
    assert collated["skipped_images"] == 1
    strict = ExampleTransform(transform.transform, strict=True)
    with pytest.raises(ValueError, match="photos/broken.jpg.*strict_images"):
        strict({"image": [broken], "label": [0]})


def test_truncated_and_empty_files_are_undecodable_and_a_one_pixel_image_is_not(tmp_path):
    processor = ViTImageProcessor(size={"height": 8, "width": 8})
    Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "whole.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    (tmp_path / "empty.png").write_bytes(b"")
    Image.new("L", (1, 1), 255).save(tmp_path / "pixel.png")
    images = [{"bytes": None, "path": str(tmp_path / name)} for name in ("truncated.png", "empty.png", "pixel.png")]
    for transform in (build_eval_transform(processor), build_train_transform(processor, AugmentationArguments())):
        batch = ExampleTransform(transform)({"image": images, "label": [0, 1, 2]})
        assert batch["pixel_values"][:2] == [None, None] and batch["pixel_values"][2].shape == (3, 8, 8)
    for name in ("truncated.png", "empty.png"):
        with pytest.raises(ValueError, match=name):
            ExampleTransform(build_eval_transform(processor), strict=True)(
                {"image": [{"bytes": None, "path": str(tmp_path / name)}], "label": [0]}
            )


def test_the_trainer_counts_skipped_images_and_keeps_the_count_from_the_model(tmp_path):
    model = ViTForImageClassification(tiny_config(num_labels=3))
    trainer = ViTTrainer(model=model, args=_args(tmp_path))
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(set(kwargs)), with_kwargs=True)
    batch = {
        "pixel_values": torch.randn(2, 3, 32, 32),
        "labels": torch.tensor([0, 1]),
        "skipped_images": torch.tensor(3),
    }
    trainer.current_gradient_accumulation_steps = 1  # set by the Trainer's loop before each optimizer step
    trainer.training_step(model, batch)
    trainer.prediction_step(model, {**batch, "skipped_images": torch.tensor(1)}, prediction_loss_only=False)
    assert seen == [{"pixel_values", "labels"}] * 2
    assert trainer.skipped_training_images() == 3 and trainer._skipped_images["eval"] == 1


def test_mixer_gives_smoothed_target_distributions():
    pixels, labels = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    smoothed = BatchMixer(5, smoothing=0.1)(pixels, labels)[1]
    expected = torch.nn.functional.one_hot(labels, 5) * 0.9 + 0.02
    torch.testing.assert_close(smoothed, expected)
    torch.manual_seed(0)
    mixed_pixels, mixed = BatchMixer(5, mixup_alpha=0.8, cutmix_alpha=1.0, smoothing=0.1)(pixels, labels)
    assert mixed.shape == (6, 5) and not torch.equal(mixed_pixels, pixels)
    torch.testing.assert_close(mixed.sum(-1), torch.ones(6))
    assert (mixed >= 0.02 - 1e-6).all() and ((mixed > 0.05).sum(-1) >= 1).all()
    assert not BatchMixer(5).active


def test_layer_decay_and_no_weight_decay_groups():
    model = ViTForImageClassification(
        tiny_config(num_hidden_layers=3, use_distillation_token=True, layer_scale_init_value=0.1)
    )
    assert layer_id("vit.embeddings.cls_token", 3) == 0
    assert layer_id("vit.layers.2.mlp.fc1.weight", 3) == 3
    assert layer_id("classifier.weight", 3) == 4
    assert layer_id("base_model.model.vit.layers.0.attention.q_proj.lora_A.default.weight", 3) == 1
    groups = parameter_groups(model, learning_rate=1.0, weight_decay=0.05, layer_decay=0.5, num_layers=3)
    by_parameter = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert sum(len(g["params"]) for g in groups) == len(named)

    def group(name):
        return by_parameter[id(named[name])]

    assert group("classifier.weight")["lr"] == 1.0 and group("classifier.weight")["weight_decay"] == 0.05
    assert group("vit.layers.1.attention.q_proj.weight")["weight_decay"] == 0.05
    assert group("vit.layers.2.mlp.fc1.weight")["lr"] == 0.5
    assert group("vit.layers.0.attention.q_proj.weight")["lr"] == 0.125
    assert group("vit.embeddings.patch_embeddings.projection.weight")["lr"] == 0.0625
    no_decay = (
        "vit.embeddings.position_embeddings",
        "vit.embeddings.cls_token",
        "vit.embeddings.distillation_token",
        "vit.layers.1.layernorm_before.weight",
        "vit.layers.1.mlp.fc1.bias",
        "vit.layernorm.bias",
        "vit.layers.2.layer_scale1.lambda1",
    )
    for name in no_decay:
        assert group(name)["weight_decay"] == 0.0, name
    flat = parameter_groups(model, learning_rate=1.0, weight_decay=0.05, layer_decay=None, num_layers=3)
    assert len(flat) == 2 and {g["lr"] for g in flat} == {1.0}


def test_recipe_flags_override_the_file_and_unknown_keys_fail(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "dataset_name: digits\npreset: vit_tiny_patch16_224\noutput_dir: out\nlearning_rate: 0.1\n"
        "report_to: none\nlayer_decay: 0.65\n"
    )
    parsed = read_recipe(recipe, ["--learning_rate", "0.01", "--mixup_alpha", "0.8"])
    model, data, training = parsed.model, parsed.data, parsed.training
    assert (model.preset, data.dataset_name, training.learning_rate) == ("vit_tiny_patch16_224", "digits", 0.01)
    mixup = parsed.augmentation.mixup_alpha
    assert (training.layer_decay, mixup, training.remove_unused_columns) == (0.65, 0.8, False)
    saved = save_resolved_recipe(parsed, tmp_path / "run").read_text()
    assert "learning_rate: 0.01\n" in saved and "mixup_alpha: 0.8\n" in saved
    assert "preset: vit_tiny_patch16_224\n" in saved
    assert read_recipe(tmp_path / "run" / "vit_ft_recipe.yaml").training.learning_rate == 0.01
    recipe.write_text("dataset_name: digits\nnum_train_epoch: 3\n")
    with pytest.raises(
        ValueError,
        match=r"Unknown field 'num_train_epoch' in .*recipe.yaml. Did you mean "
        r"'num_train_epochs'\?",
    ):
        read_recipe(recipe)
    with pytest.raises(ValueError, match=r"Unknown field 'mix_up' in the command line"):
        read_recipe(None, ["--mix_up", "0.2"])
    # The last of repeated flags wins, `None` included.
    flags = [
        "--layer_decay",
        "0.5",
        "--preset",
        "vit_small_patch16_224",
        "--layer_decay",
        "None",
        "--preset",
        "None",
        "--preset=vit_base_patch16_224",
        "--learning_rate=1",
        "--learning_rate",
        "2",
    ]
    parsed = read_recipe(tmp_path / "run" / "vit_ft_recipe.yaml", flags)
    assert (parsed.training.layer_decay, parsed.model.preset, parsed.training.learning_rate) == (
        None,
        "vit_base_patch16_224",
        2.0,
    )


def test_train_help_lists_the_fields(capsys):
    from vit_ft.cli import main

    main(["train", "--help"])
    printed = capsys.readouterr().out
    assert "usage: vit-ft train RECIPE.yaml" in printed
    for field in ("--model_name_or_path", "--dataset_name", "--layer_decay", "--mixup_alpha", "--learning_rate"):
        assert field in printed
