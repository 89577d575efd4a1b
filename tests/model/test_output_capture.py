"""`output_hidden_states` and `output_attentions` as transformers' ViT takes them (flags or layer indices), compared
with transformers' ViT holding the same weights."""

import pytest
import torch
import transformers

from tests.conftest import TINY
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints import load_checkpoint


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """transformers' ViT (eager, so it forms attention maps) and vit_ft's, converted from the same weights."""
    torch.manual_seed(0)
    source = transformers.ViTForImageClassification(transformers.ViTConfig(**TINY, num_labels=3)).eval()
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    path = tmp_path_factory.mktemp("vit")
    source.save_pretrained(path)
    reference = transformers.ViTForImageClassification.from_pretrained(path, attn_implementation="eager").eval()
    return reference, load_checkpoint(path, ViTForImageClassification).eval()


def _assert_same_entries(ours: tuple, theirs: tuple) -> None:
    assert [entry is None for entry in ours] == [entry is None for entry in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        if reference is not None:
            torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("hidden_states", "attentions"),
    [([0, -1], [1]), ([1], None), (2, True), (True, False), (False, True), ([0, 1, 2], [0, 1])],
)
def test_selected_layers_match_transformers_vit(pair, hidden_states, attentions):
    reference, model = pair
    pixels = torch.randn(2, 3, 32, 32)
    kwargs = {"output_hidden_states": hidden_states, "output_attentions": attentions}
    with torch.no_grad():
        theirs, ours = reference(pixels, **kwargs), model(pixels, **kwargs)
    torch.testing.assert_close(ours.logits, theirs.logits, rtol=1e-4, atol=1e-4)
    for key in ("hidden_states", "attentions"):
        if getattr(theirs, key) is None:
            assert getattr(ours, key) is None, key
        else:
            _assert_same_entries(getattr(ours, key), getattr(theirs, key))


def test_selected_hidden_states_are_the_embeddings_and_block_outputs(pair):
    _, model = pair
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        every = model(pixels, output_hidden_states=True).hidden_states
        chosen = model(pixels, output_hidden_states=[0, -1]).hidden_states
    assert len(every) == len(chosen) == model.config.num_hidden_layers + 1
    assert chosen[1] is None
    torch.testing.assert_close(chosen[0], every[0], rtol=0, atol=0)
    torch.testing.assert_close(chosen[-1], every[-1], rtol=0, atol=0)
    assert model(pixels).hidden_states is None and model(pixels).attentions is None


def test_tuple_outputs_have_transformers_structure(pair):
    reference, model = pair
    pixels = torch.randn(2, 3, 32, 32)
    kwargs = {"output_hidden_states": [0, -1], "output_attentions": True, "return_dict": False}
    with torch.no_grad():
        theirs, ours = reference(pixels, **kwargs), model(pixels, **kwargs)
        encoder = model.vit(pixels, **kwargs)
    assert isinstance(ours, tuple) and len(ours) == len(theirs) == 3  # logits, hidden states, attentions
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-4, atol=1e-4)
    _assert_same_entries(ours[1], theirs[1])
    _assert_same_entries(ours[2], theirs[2])
    assert len(encoder) == 4  # last hidden state, pooled output, hidden states, attentions
    _assert_same_entries(encoder[2], theirs[1])
