"""
The model card's names and template: every recipe field it reads is a field of an argument group, so renaming a field
fails here rather than dropping it silently off the cards; the template reads only what the card gives it.
tests/hub/test_hub.py checks the cards of real runs.
"""

import functools
from dataclasses import fields, replace

import jinja2
import pytest

from vit_ft.hub import card
from vit_ft.hub.card import KEY_HYPERPARAMETERS, MASKED_AUTOENCODER, METHOD_HYPERPARAMETERS, CardRecipe
from vit_ft.output_dir import RobustnessReport, RunRecord, SplitMetrics, TrainingFacts
from vit_ft.pretrain import PretrainingRecipe
from vit_ft.recipe import Recipe, recipe_groups
from vit_ft.training.arguments import DistillationArguments, LoraArguments

LABELS = {"0": "a", "1": "b"}
CONFIG = {"num_hidden_layers": 2, "hidden_size": 32, "image_size": 16, "patch_size": 4, "id2label": LABELS}
SCORES = SplitMetrics(accuracy=0.5, top_k_accuracy=1.0, k=2, f1=0.4, loss=0.7)
FACTS = TrainingFacts(runtime=65.0, epochs=3.0, processes=2, hardware="CPU (2 cores)", trainable_parameters=1234)
RECIPE = {"preset": "vit_tiny_patch16_224", "dataset_name": "digits", "per_device_train_batch_size": 16, "seed": 0}
CLASSIFIER = RunRecord(
    recipe=RECIPE,
    splits={"validation": SCORES, "test": SCORES},
    training=FACTS,
    robustness=[
        RobustnessReport("test", 16, (3,), SCORES, {"jpeg": {3: SCORES}}, model_file="onnx/model_quantized.onnx"),
        RobustnessReport("test", 16, (1, 3), SCORES, {"jpeg": {1: SCORES, 3: SCORES}}, plot="robustness_test.png"),
    ],
    config=CONFIG,
    adapter=None,
    adapter_record={},
    plots=["training_curves.png"],
    onnx_models=["model.onnx", "model_quantized.onnx"],
)
ADAPTER = replace(
    CLASSIFIER,
    recipe={"model_name_or_path": "tester/base", "dataset_name": "tester/letters", "peft_method": "lora", "lora_r": 4},
    robustness=[],
    config=None,
    adapter={
        "peft_type": "LORA",
        "r": 4,
        "lora_alpha": 8,
        "target_modules": ["vit.layers.0.attention.q_proj"],
        "base_model_name_or_path": "tester/base",
    },
    adapter_record={"id2label": LABELS},
    onnx_models=[],
)
# A card of each kind, with each branch of the template taken by one of them.
RUNS = {
    "classifier": CLASSIFIER,
    "distilled": replace(CLASSIFIER, recipe={**RECIPE, "teacher_model_name_or_path": "tester/teacher"}),
    "cut from the teacher": replace(
        CLASSIFIER,
        recipe={
            "teacher_model_name_or_path": "/teachers/deit",
            "student_from_teacher": True,
            "student_layers": "0,11",
            "distillation_type": "hard",
            "train_dir": "/data/flowers/train",
        },
    ),
    "fine-tuned": replace(CLASSIFIER, recipe={**RECIPE, "preset": None, "model_name_or_path": "tester/base"}),
    "adapter": ADAPTER,
    "adapter of a local base": replace(ADAPTER, adapter={**ADAPTER.adapter, "base_model_name_or_path": "/base"}),
    "encoder": replace(
        CLASSIFIER,
        splits={"validation": SplitMetrics(loss=0.7)},
        robustness=[],
        config={**CONFIG, "architectures": [MASKED_AUTOENCODER], "mask_ratio": 0.75, "decoder_num_hidden_layers": 2},
        plots=["reconstructions.png"],
        onnx_models=[],
    ),
    "converted": RunRecord({}, {}, None, [], CONFIG, None, {}, []),
}


class _RecordingRecipe(dict):
    """A recipe that notes each key looked up in it."""

    def __init__(self, recipe: dict):
        super().__init__(recipe)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _card_of(run: RunRecord, monkeypatch) -> str:
    monkeypatch.setattr(card, "read_run", lambda model_dir: run)
    return card.build_model_card("unused", "tester/model", license="mit").text


def _recipe_fields() -> set[str]:
    """The fields a saved recipe holds: those of `vit-ft train`'s and `vit-ft pretrain`'s argument groups."""
    groups = {*recipe_groups(Recipe), *recipe_groups(PretrainingRecipe)}
    return {item.name for group in groups for item in fields(group) if item.init}


def _names(group: type) -> set[str]:
    return {item.name for item in fields(group)}


def test_every_recipe_field_the_card_names_is_a_field_of_an_argument_group():
    named = {*KEY_HYPERPARAMETERS, *METHOD_HYPERPARAMETERS, *sum(METHOD_HYPERPARAMETERS.values(), ())}
    assert named - _recipe_fields() == set()
    assert _names(CardRecipe) - _recipe_fields() == set()


@pytest.mark.parametrize("kind", RUNS)
def test_every_recipe_key_the_card_looks_up_is_a_field_of_an_argument_group(kind, monkeypatch):
    recipe = _RecordingRecipe(RUNS[kind].recipe)
    _card_of(replace(RUNS[kind], recipe=recipe), monkeypatch)
    assert recipe.read - _recipe_fields() == set()


def test_the_card_lists_every_field_of_lora_and_distillation_when_the_run_used_them():
    assert set(METHOD_HYPERPARAMETERS["peft_method"]) == _names(LoraArguments)
    assert set(METHOD_HYPERPARAMETERS["teacher_model_name_or_path"]) == _names(DistillationArguments)


@pytest.mark.parametrize("kind", RUNS)
def test_the_template_reads_only_what_the_card_gives_it(kind, monkeypatch):
    # ModelCard.from_template renders with Jinja's default Undefined, which prints a misspelled name as nothing.
    monkeypatch.setattr(jinja2, "Template", functools.partial(jinja2.Template, undefined=jinja2.StrictUndefined))
    text = _card_of(RUNS[kind], monkeypatch)
    # One blank line between parts, whichever are left out, and one line break at the end.
    assert text.startswith("\n# model\n\n") and "\n\n\n" not in text and text.endswith("\n") and text[-2] != "\n"


def test_each_kind_of_card_says_what_its_run_was(monkeypatch):
    cards = {kind: _card_of(run, monkeypatch) for kind, run in RUNS.items()}
    classifier = cards["classifier"]
    assert "Split `test` (16 images), scored with `onnx/model_quantized.onnx`, corruption severity 3" in classifier
    assert "accuracy at corruption severities 1, 3 of 5" in classifier
    assert "on 2 processes, CPU (2 cores), 3 epochs; batch size 32" in classifier
    assert 'pipeline("image-classification", "tester/model", { dtype: "q8", config })' in classifier
    teacher = "[tester/teacher](https://huggingface.co/tester/teacher)"
    assert f"distilled from the teacher {teacher} with the distillation of DeiT" in cards["distilled"]
    cut = cards["cut from the teacher"]
    assert ", cut from the teacher (its layers 0,11) and trained on image folder train." in cut
    assert "fine-tuned from [tester/base](https://huggingface.co/tester/base) on" in cards["fine-tuned"]
    assert "(rank 4, alpha 8, on `q_proj`)" in cards["adapter"] and 'load_model("tester/model")  #' in cards["adapter"]
    assert 'base_model="BASE_MODEL_ID_OR_PATH"' in cards["adapter of a local base"]
    assert "(MAE, He et al. 2022: 75% of the patches hidden, the rest reconstructed by a 2-block" in cards["encoder"]
    assert "## Training" not in cards["converted"] and "2 classes: a, b." in cards["converted"]
