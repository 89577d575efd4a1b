"""Loading transformers ViT and DeiT checkpoints, written on disk by transformers itself, into vit_ft."""

import json
import logging

import pytest
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForImageClassification

from vit_ft import ViTForImageClassification, ViTModel
from vit_ft.checkpoints import load_checkpoint
from vit_ft.cli import main as cli_main

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, num_labels=4)
CONFIGS = {
    "p16_224": dict(image_size=224, patch_size=16),
    "p14_224": dict(image_size=224, patch_size=14),
    "p32_384": dict(image_size=384, patch_size=32),
    "p16_384_no_qkv_bias": dict(image_size=384, patch_size=16, qkv_bias=False),
}


def _save(model, path, layout: str):
    """`legacy` is what transformers' save_pretrained writes (pre-5.9 names); `current` the in-memory names."""
    model.save_pretrained(path)
    if layout == "current":
        (path / "model.safetensors").unlink()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    return path


def _randomise(model):
    # Non-trivial values everywhere (transformers zero-initialises biases and tokens).
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.mark.parametrize("layout", ["legacy", "current"])
@pytest.mark.parametrize("name", CONFIGS)
def test_vit_logits_match(tmp_path, name, layout):
    source = _randomise(transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, **CONFIGS[name])))
    path = _save(source, tmp_path / "vit", layout)
    model = load_checkpoint(path, ViTForImageClassification).eval()
    pixels = torch.randn(2, 3, source.config.image_size, source.config.image_size)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels).logits, rtol=1e-4, atol=1e-4)
    assert model.config.model_type == "vit_ft"
    assert model.config.id2label == source.config.id2label
    assert model.config.layer_norm_eps == source.config.layer_norm_eps


def test_from_pretrained_on_a_transformers_checkpoint_points_to_the_converting_reader(tmp_path):
    source = transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, **CONFIGS["p16_224"]))
    path = _save(source, tmp_path / "vit", "legacy")
    with pytest.raises(ValueError, match=r"holds a 'vit' model, not a vit_ft one.*load_checkpoint\(path"):
        ViTForImageClassification.from_pretrained(path)


@pytest.mark.parametrize("layout", ["legacy", "current"])
def test_deit_with_teacher_logits_match(tmp_path, layout):
    config = transformers.DeiTConfig(**TINY, image_size=64, patch_size=16)
    source = _randomise(transformers.DeiTForImageClassificationWithTeacher(config))
    model = load_checkpoint(_save(source, tmp_path / "deit", layout), ViTForImageClassification).eval()
    assert model.config.use_distillation_token and model.distillation_classifier is not None
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, ours = source(pixels), model(pixels)
    torch.testing.assert_close(ours.logits, expected.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.cls_logits, expected.cls_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.distillation_logits, expected.distillation_logits, rtol=1e-4, atol=1e-4)


def test_deit_single_head_logits_match(tmp_path):
    source = _randomise(transformers.DeiTForImageClassification(transformers.DeiTConfig(**TINY, image_size=64)))
    model = load_checkpoint(_save(source, tmp_path / "deit", "legacy"), ViTForImageClassification).eval()
    assert model.config.use_distillation_token and model.distillation_classifier is None
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels).logits, rtol=1e-4, atol=1e-4)


def test_base_model_drops_the_pooler_and_names_the_new_head(tmp_path, caplog):
    source = _randomise(transformers.ViTModel(transformers.ViTConfig(**TINY, image_size=32, patch_size=8)))
    path = _save(source, tmp_path / "vit_base", "legacy")
    caplog.set_level(logging.WARNING)
    transformers.logging.enable_propagation()
    try:
        model = load_checkpoint(path, ViTForImageClassification).eval()
    finally:
        transformers.logging.disable_propagation()
    assert "pooler.dense.weight" in caplog.text and "dropped 2 weights" in caplog.text
    assert "classifier.weight" in caplog.text  # transformers' report of newly initialised weights
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        base = load_checkpoint(path, ViTModel)(pixels).last_hidden_state
        torch.testing.assert_close(base, source(pixels).last_hidden_state, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model.vit(pixels).last_hidden_state, base)


def test_num_labels_override_needs_ignore_mismatched_sizes(tmp_path):
    source = _randomise(transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, image_size=32)))
    path = _save(source, tmp_path / "vit", "legacy")
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        load_checkpoint(path, ViTForImageClassification, num_labels=7)
    labels = {i: f"class_{i}" for i in range(7)}
    model = load_checkpoint(path, ViTForImageClassification, id2label=labels, ignore_mismatched_sizes=True)
    assert model.classifier.weight.shape == (7, 32)
    assert model.config.id2label[6] == "class_6" and model.config.num_labels == 7
    torch.testing.assert_close(model.vit.embeddings.cls_token, source.vit.embeddings.cls_token)


def test_loading_at_another_image_size_resizes_positions_permanently(tmp_path):
    source = _randomise(transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, image_size=32)))
    path = _save(source, tmp_path / "vit", "legacy")
    model = load_checkpoint(path, ViTForImageClassification, image_size=64).eval()
    assert model.config.image_size == 64
    assert model.vit.embeddings.position_embeddings.shape == (1, 1 + 16, 32)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = source(pixels, interpolate_pos_encoding=True).logits
        torch.testing.assert_close(model(pixels).logits, expected, rtol=1e-4, atol=1e-4)
    model.save_pretrained(tmp_path / "resized")
    reloaded = ViTForImageClassification.from_pretrained(tmp_path / "resized").eval()
    torch.testing.assert_close(reloaded(pixels).logits, model(pixels).logits)
    again = load_checkpoint(tmp_path / "resized", ViTForImageClassification, image_size=32).eval()
    assert again.vit.embeddings.position_embeddings.shape == (1, 1 + 4, 32)


def test_auto_class_loads_converted_checkpoint_after_cli(tmp_path):
    source = _randomise(transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, image_size=32)))
    source.save_pretrained(tmp_path / "vit")
    transformers.ViTImageProcessor(image_mean=[0.1, 0.2, 0.3], size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "vit"
    )
    cli_main(["convert", "--from", "transformers", "--input", str(tmp_path / "vit"), "--output", f"{tmp_path}/out"])
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "vit_ft" and "auto_map" in config
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == [0.1, 0.2, 0.3]
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    assert isinstance(model, ViTForImageClassification)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels).logits, rtol=1e-4, atol=1e-4)


def test_other_architecture_is_a_clear_error(tmp_path):
    bert = transformers.BertModel(
        transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
    )
    bert.save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match=r"holds a 'bert' model.*vit-ft convert --from timm"):
        load_checkpoint(tmp_path / "bert", ViTForImageClassification)
    with pytest.raises(SystemExit, match="holds a 'bert' model"):
        cli_main(["convert", "--from", "transformers", "--input", str(tmp_path / "bert"), "--output", str(tmp_path)])
