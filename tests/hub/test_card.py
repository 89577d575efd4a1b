"""The model card's reading of the recipe: every field it names is a field of an argument group, so renaming a field
fails here rather than dropping it silently off the cards."""

from dataclasses import fields

from vit_ft.hub.card import KEY_HYPERPARAMETERS, METHOD_HYPERPARAMETERS, CardRecipe
from vit_ft.pretrain import PretrainingRecipe
from vit_ft.recipe import Recipe, recipe_groups
from vit_ft.training.arguments import DistillationArguments, LoraArguments


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


def test_the_card_lists_every_field_of_lora_and_distillation_when_the_run_used_them():
    assert set(METHOD_HYPERPARAMETERS["peft_method"]) == _names(LoraArguments)
    assert set(METHOD_HYPERPARAMETERS["teacher_model_name_or_path"]) == _names(DistillationArguments)
