"""The model a run starts from: presets, checkpoints with the dataset's labels, frozen backbones."""

import logging

import pytest
import torch
import transformers
from transformers import DeiTImageProcessor, ViTImageProcessor

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.checkpoints.loading import build_model, freeze_backbone


def _checkpoint(tmp_path, labels, processor=None, **overrides):
    config = tiny_config(id2label=dict(enumerate(labels)), num_labels=len(labels), **overrides)
    model = ViTForImageClassification(config)
    model.save_pretrained(tmp_path / "ckpt")
    if processor is not None:
        processor.save_pretrained(tmp_path / "ckpt")
    return model, str(tmp_path / "ckpt")


def test_preset_from_scratch_with_overrides():
    args = ModelArguments(preset="vit_tiny_patch16_224", model_overrides='{"image_size": 16, "patch_size": 2}')
    model, processor = build_model(args, ["a", "b", "c"])
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"} and model.config.label2id["c"] == 2
    assert (model.config.image_size, model.config.hidden_size) == (16, 192)
    assert processor.size == {"height": 16, "width": 16}
    with pytest.raises(ValueError, match="Set model_name_or_path"):
        build_model(ModelArguments(), ["a"])


def test_same_labels_keep_the_head(tmp_path):
    source, path = _checkpoint(tmp_path, ["cat", "dog"], ViTImageProcessor(size={"height": 32, "width": 32}))
    model, _ = build_model(ModelArguments(model_name_or_path=path), ["cat", "dog"])
    torch.testing.assert_close(model.classifier.weight, source.classifier.weight)


@pytest.mark.parametrize("labels", [["cat", "dog", "fox"], ["dog", "cat"]])
def test_other_labels_reinitialise_the_heads_with_a_warning(tmp_path, caplog, labels):
    source, path = _checkpoint(tmp_path, ["cat", "dog"], use_distillation_token=True)
    with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoints.loading"):
        model, processor = build_model(ModelArguments(model_name_or_path=path), labels)
    assert f"differ from the dataset's ({len(labels)}: {', '.join(labels)})" in caplog.text
    assert "re-initialised" in caplog.text
    assert model.config.id2label == dict(enumerate(labels))
    for head in ("classifier", "distillation_classifier"):
        assert getattr(model, head).weight.shape[0] == len(labels)
        if len(labels) == 2:
            assert not torch.allclose(getattr(model, head).weight, getattr(source, head).weight)
    torch.testing.assert_close(model.vit.layers[0].mlp.fc1.weight, source.vit.layers[0].mlp.fc1.weight)
    assert processor.size == {"height": 32, "width": 32}  # no preprocessor config: ViT's defaults at the model size


def test_a_checkpoint_without_a_head_gets_a_new_one_and_the_warning_says_so(tmp_path, caplog):
    # An in21k backbone as transformers saves it (ViTModel: no classifier, no labels), and a classifier whose only
    # label name is empty: neither has labels to differ from the data's.
    config = transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8
    )
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(tmp_path / "in21k")
    _, blank = _checkpoint(tmp_path, [""])
    for path in (str(tmp_path / "in21k"), blank):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoints.loading"):
            model, _ = build_model(ModelArguments(model_name_or_path=path), ["cat", "dog", "fox"])
        assert model.classifier.weight.shape == (3, 32)
        assert f"{path} has no classifier head: a new one is created for the dataset's 3 labels (cat, dog, fox)." in (
            caplog.messages
        )
        assert "differ" not in caplog.text


def test_transformers_checkpoint_converts_and_fine_tuning_size_follows_the_model(tmp_path):
    config = transformers.DeiTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
        num_labels=3,
    )
    transformers.DeiTForImageClassificationWithTeacher(config).save_pretrained(tmp_path / "deit")
    DeiTImageProcessor(size={"height": 36, "width": 36}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "deit"
    )
    args = ModelArguments(model_name_or_path=str(tmp_path / "deit"), model_overrides='{"image_size": 48}')
    model, processor = build_model(args, ["x", "y", "z"])
    assert model.config.model_type == "vit_ft" and model.config.image_size == 48
    assert model.vit.embeddings.position_embeddings.shape == (1, 2 + 36, 32)
    assert processor.size == {"height": 48, "width": 48} and not processor.do_center_crop


def test_freeze_backbone_leaves_only_the_heads():
    model = ViTForImageClassification(tiny_config(use_distillation_token=True))
    trainable = freeze_backbone(model)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert names == [
        "classifier.weight",
        "classifier.bias",
        "distillation_classifier.weight",
        "distillation_classifier.bias",
    ]
    assert trainable == 2 * (32 * 5 + 5)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("{tmp}/model", None),  # an existing folder
        ("org/name", None),  # can only be a Hub id
        ("name", None),
        ("./model", None),
        ("{tmp}/missing", "model='{tmp}/missing' is not a directory: {tmp}/missing does not exist. Train"),
        ("../missing", "model='../missing' is not a directory: {parent}/missing does not exist. Train"),
        ("~/vit-ft-missing", "model='~/vit-ft-missing' is not a directory: {home}/vit-ft-missing does not exist."),
        ("a/b/c", "model='a/b/c' is not a directory: {tmp}/a/b/c does not exist. Train"),
        (
            "outputs/digits",
            "model='outputs/digits' is not a directory: {tmp}/outputs/digits does not exist (outputs/ "
            "is a folder here, so this is a path, not a Hub id). Train",
        ),
        ("model/config.json", "model='model/config.json' is not a directory but a file: give the folder"),
        ("my model", "model='my model' is neither a folder here nor a Hub id (org/name)"),
    ],
)
def test_a_model_source_written_as_a_path_must_exist(tmp_path, monkeypatch, value, error):
    from pathlib import Path

    from vit_ft.checkpoints.arguments import check_model_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "outputs").mkdir()
    names = {"tmp": tmp_path, "parent": tmp_path.parent, "home": Path.home()}
    if error is None:
        check_model_source(value.format(**names), "model")
    else:
        with pytest.raises((FileNotFoundError, ValueError)) as raised:
            check_model_source(value.format(**names), "model")
        assert str(raised.value).startswith(error.format(**names))
