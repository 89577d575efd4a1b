"""transformers' ViTMAE (`model_type` vit_mae) checkpoints, written by transformers itself, loaded into vit_ft."""

import logging

import pytest
import torch
import transformers
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

from vit_ft import ViTForImageClassification, ViTModel
from vit_ft.checkpoints import load_checkpoint
from vit_ft.model.modeling_vit_ft import sincos_position_embeddings

MAE_TINY = dict(
    image_size=32,
    patch_size=4,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=24,
)


def _mae_positions(grid: int, dim: int) -> torch.Tensor:
    """The fixed table a Hub MAE checkpoint holds, `(1, 1 + grid * grid, dim)`: transformers' sin-cos with the
    original code's halves swapped, as ViTMAEEmbeddings.initialize_weights writes it."""
    table = build_2d_sinusoidal_position_embedding(grid, grid, dim, cls_token=True)
    return torch.cat([table[:, dim // 2 :], table[:, : dim // 2]], dim=1).unsqueeze(0)


def _randomised(model):
    # Non-trivial values everywhere (transformers zero-initialises biases and tokens), and MAE's fixed positions:
    # transformers 5.25 leaves a freshly built ViTMAE's table at zeros (initialize_weights returns early, the patch
    # projection being marked initialised already), which would test nothing of the positions.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("embeddings.position_embeddings"):
                parameter.copy_(_mae_positions(int((parameter.shape[1] - 1) ** 0.5), parameter.shape[2]))
            elif "pos_embed" not in name:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def _unmasked(source: transformers.ViTMAEModel, pixels: torch.Tensor) -> torch.Tensor:
    """ViTMAEModel's last hidden states with nothing masked: mask ratio 0 and increasing noise keep every patch in
    order (random_masking keeps the patches of lowest noise, sorted by it)."""
    source.config.mask_ratio = 0.0
    patches = (source.config.image_size // source.config.patch_size) ** 2
    noise = torch.arange(patches, dtype=torch.float32).expand(pixels.shape[0], -1)
    with torch.no_grad():
        output = source(pixels, noise=noise)
    assert output.mask.sum() == 0 and torch.equal(output.ids_restore[0], torch.arange(patches))
    return output.last_hidden_state  # (batch, 1 + patches, hidden)


@pytest.mark.parametrize("source_class", [transformers.ViTMAEModel, transformers.ViTMAEForPreTraining])
def test_vit_mae_hidden_states_match_transformers(tmp_path, source_class, caplog):
    torch.manual_seed(0)
    source = _randomised(source_class(transformers.ViTMAEConfig(**MAE_TINY)))
    source.save_pretrained(tmp_path / "mae")
    with caplog.at_level(logging.WARNING):
        model = load_checkpoint(tmp_path / "mae", ViTModel).eval()
    encoder = source.vit if source_class is transformers.ViTMAEForPreTraining else source
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours = model(pixels).last_hidden_state
    assert encoder.embeddings.position_embeddings.abs().sum() > 1  # the fixed positions take part
    torch.testing.assert_close(ours, _unmasked(encoder, pixels), rtol=1e-5, atol=1e-5)
    assert model.config.layer_norm_eps == 1e-12 and model.config.qkv_bias
    decoder_lines = [r.getMessage() for r in caplog.records if "decoder" in r.getMessage()]
    expected = 1 if source_class is transformers.ViTMAEForPreTraining else 0
    assert len(decoder_lines) == expected and all("\n" not in line for line in decoder_lines)


def test_mae_positions_are_vit_ft_sincos_with_halves_swapped():
    # Why the positions load as the checkpoint's table: the same frequencies, the row and column halves swapped.
    ours = sincos_position_embeddings((5, 5), 32)[0]  # (25, 32): [sin_h, cos_h, sin_w, cos_w]
    theirs = build_2d_sinusoidal_position_embedding(5, 5, 32, cls_token=True)  # (26, 32), class row first
    torch.testing.assert_close(theirs[1:], ours, rtol=0, atol=1e-6)
    assert torch.equal(theirs[0], torch.zeros(32))
    table = _mae_positions(5, 32)[0]  # what MAE checkpoints hold: [sin_w, cos_w, sin_h, cos_h]
    torch.testing.assert_close(table[1:], torch.cat([ours[:, 16:], ours[:, :16]], dim=1), rtol=0, atol=1e-6)
    assert not torch.allclose(table[1:], ours, atol=0.1)  # so a `sincos` config would give other numbers


def test_vit_mae_fine_tunes_as_a_classifier(tmp_path):
    source = _randomised(transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**MAE_TINY)))
    source.save_pretrained(tmp_path / "mae")
    model = load_checkpoint(
        tmp_path / "mae", ViTForImageClassification, num_labels=3, pooling="mean", drop_path_rate=0.1
    ).eval()
    assert model.config.num_labels == 3 and model.config.pooling == "mean" and model.config.drop_path_rate == 0.1
    assert model.config.position_embedding_type == "learned"
    table = source.vit.embeddings.position_embeddings
    assert torch.equal(model.vit.embeddings.position_embeddings, table)
    assert not any(name.startswith("decoder") for name, _ in model.named_parameters())
    assert model(torch.randn(2, 3, 32, 32)).logits.shape == (2, 3)
    # Another image size resizes the table bicubically, as MAE's fine-tuning does (interpolate_pos_embed).
    larger = load_checkpoint(tmp_path / "mae", ViTForImageClassification, num_labels=3, image_size=48)
    assert larger.vit.embeddings.position_embeddings.shape == (1, 1 + 12 * 12, 32)
