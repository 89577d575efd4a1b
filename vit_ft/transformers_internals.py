"""
The two things vit_ft needs from transformers that no public name gives, each behind a function that says why.
Everywhere else vit_ft uses other libraries' public names only (the model package aside: it reads the attention
choice from its config as transformers' own models do); tests/test_packaging.py checks it.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PretrainedConfig, Trainer


def attention_implementation(config: "PretrainedConfig") -> str | None:
    """
    The attention implementation (`eager`, `sdpa`, ...) a model of `config` runs. transformers sets it through public
    names (the `attn_implementation` argument of a config and of `from_pretrained`, `set_attn_implementation`) but
    has no public getter: its own models read `config._attn_implementation`.
    """
    return config._attn_implementation


def save_without_push(trainer: "Trainer") -> None:
    """
    `trainer.save_model()` into its `output_dir`, without the Hub upload `save_model` makes under `push_to_hub`: a
    run pushes once, at the end, with its results and card. The Trainer leaves that upload out only for its own
    calls (`_internal_call=True`); no public argument does.
    """
    trainer.save_model(_internal_call=True)
