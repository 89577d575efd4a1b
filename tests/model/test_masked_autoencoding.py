"""ViTForMaskedAutoencoding (MAE, He et al. 2022): masking, what the encoder sees, the loss, gradients, saving and
loading with and without vit_ft, and its config checks."""

import logging

import numpy as np
import pytest
import torch
from transformers import AutoModelForPreTraining

from tests.conftest import TINY, run_without_vit_ft
from vit_ft import ViTConfig, ViTForImageClassification, ViTForMaskedAutoencoding
from vit_ft.checkpoints.pretrained import load_checkpoint
from vit_ft.model.modeling_vit_ft import random_masking

DECODER = dict(
    decoder_hidden_size=16, decoder_num_hidden_layers=2, decoder_num_attention_heads=2, decoder_intermediate_size=24
)
PATCHES = (TINY["image_size"] // TINY["patch_size"]) ** 2  # 64


def mae_config(**overrides) -> ViTConfig:
    return ViTConfig(**{**TINY, **DECODER, **overrides})


def _model(**overrides) -> ViTForMaskedAutoencoding:
    torch.manual_seed(0)
    return ViTForMaskedAutoencoding(mae_config(**overrides)).eval()


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.9, 0.3])
def test_masking_keeps_the_patches_of_least_noise(ratio):
    noise = torch.rand(3, PATCHES, generator=torch.Generator().manual_seed(1))
    visible, mask, ids_restore = random_masking(noise, ratio)
    kept = int(PATCHES * (1 - ratio))
    assert visible.shape == (3, kept)
    assert (mask.sum(dim=1) == PATCHES - kept).all()
    for row in range(3):
        expected = set(noise[row].argsort()[:kept].tolist())
        assert set(visible[row].tolist()) == expected
        assert {i for i in range(PATCHES) if mask[row, i] == 0} == expected
    torch.testing.assert_close(torch.gather(noise.argsort(dim=1), 1, ids_restore), torch.arange(PATCHES).expand(3, -1))


@pytest.mark.parametrize("overrides", [{}, {"num_register_tokens": 2}, {"pooling": "mean", "class_token": False}])
def test_the_encoder_sees_only_the_visible_patches(overrides):
    model = _model(mask_ratio=0.75, **overrides)
    pixels = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, PATCHES)
    outputs = model(pixels, noise=noise, output_hidden_states=True)
    prefix = model.config.num_prefix_tokens
    assert outputs.hidden_states[0].shape == (2, prefix + PATCHES // 4, TINY["hidden_size"])
    assert outputs.logits.shape == (2, PATCHES, 4 * 4 * 3)
    # What the masked patches hold reaches neither encoder nor decoder: the prediction is the same.
    changed = pixels.clone()
    grid = 32 // 4
    for row in range(2):
        for patch in torch.nonzero(outputs.mask[row]).flatten().tolist():
            y, x = divmod(patch, grid)
            changed[row, :, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4] = torch.randn(3, 4, 4)
    torch.testing.assert_close(model(changed, noise=noise).logits, outputs.logits)
    # ... but a visible patch's pixels do change it.
    visible = torch.nonzero(outputs.mask[0] == 0).flatten()[0].item()
    y, x = divmod(visible, grid)
    changed[0, :, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4] += 1.0
    assert not torch.allclose(model(changed, noise=noise).logits[0], outputs.logits[0])


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_the_loss_is_the_error_on_the_masked_patches_only(norm_pix_loss):
    model = _model(norm_pix_loss=norm_pix_loss)
    pixels = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, PATCHES)
    outputs = model(pixels, noise=noise)
    kept = int(PATCHES * 0.25)
    errors = []
    for row in range(2):
        visible = set(noise[row].argsort()[:kept].tolist())
        for patch in range(PATCHES):
            if patch in visible:
                continue
            y, x = divmod(patch, 8)
            # transformers' ViTMAE pixel order in a patch: row, column, channel.
            target = pixels[row, :, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4].permute(1, 2, 0).reshape(-1)
            if norm_pix_loss:
                target = (target - target.mean()) / (target.var() + 1e-6) ** 0.5
            errors.append(((outputs.logits[row, patch] - target) ** 2).mean())
    assert len(errors) == 2 * (PATCHES - kept)
    torch.testing.assert_close(outputs.loss, torch.stack(errors).mean())


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"num_register_tokens": 2, "use_distillation_token": True},
        {"pooling": "mean", "class_token": False, "layer_scale_init_value": 0.1},
    ],
)
def test_every_parameter_gets_a_gradient(overrides):
    model = _model(**overrides).train()
    model(torch.randn(2, 3, 32, 32)).loss.backward()
    missing = [
        name
        for name, parameter in model.named_parameters()
        if parameter.grad is None or not parameter.grad.abs().sum() > 0
    ]
    assert missing == []


def test_save_load_round_trip_and_auto_class(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, PATCHES)
    expected = model(pixels, noise=noise)
    loaders = (ViTForMaskedAutoencoding.from_pretrained, AutoModelForPreTraining.from_pretrained)
    for loaded in (load(tmp_path) for load in loaders):
        assert type(loaded) is ViTForMaskedAutoencoding
        outputs = loaded.eval()(pixels, noise=noise)
        torch.testing.assert_close(outputs.loss, expected.loss)
        torch.testing.assert_close(outputs.logits, expected.logits)


def test_loads_with_remote_code_without_vit_ft(tmp_path):
    model = _model()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, PATCHES)
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    np.save(tmp_path / "noise.npy", noise.numpy())
    np.save(tmp_path / "expected.npy", model(pixels, noise=noise).logits.detach().numpy())
    run_without_vit_ft(
        """
        import sys
        import numpy as np, torch
        from transformers import AutoModel, AutoModelForPreTraining
        model = AutoModelForPreTraining.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        assert type(model).__name__ == "ViTForMaskedAutoencoding", type(model)
        pixels, noise = torch.from_numpy(np.load("pixels.npy")), torch.from_numpy(np.load("noise.npy"))
        logits = model(pixels, noise=noise).logits.detach().numpy()
        np.testing.assert_allclose(logits, np.load("expected.npy"), rtol=1e-5, atol=1e-6)
        encoder = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
        assert type(encoder).__name__ == "ViTModel", type(encoder)
        """,
        str(model_dir),
        workdir=tmp_path,
    )


def test_a_classifier_fine_tunes_from_the_encoder_and_drops_the_decoder_in_one_line(tmp_path, caplog):
    model = _model()
    model.save_pretrained(tmp_path)
    caplog.set_level(logging.WARNING)
    classifier = load_checkpoint(tmp_path, ViTForImageClassification, num_labels=3)
    dropped = [record for record in caplog.records if "decoder" in record.getMessage()]
    assert len(dropped) == 1 and "dropped" in dropped[0].getMessage() and "\n" not in dropped[0].getMessage()
    encoder = model.vit.state_dict()
    for name, tensor in classifier.vit.state_dict().items():
        torch.testing.assert_close(tensor, encoder[name], rtol=0, atol=0)
    assert classifier.classifier.out_features == 3


def test_another_image_size_resizes_the_positions_in_one_line(tmp_path, caplog):
    _model().save_pretrained(tmp_path)
    caplog.set_level(logging.WARNING)
    classifier = load_checkpoint(tmp_path, ViTForImageClassification, num_labels=3, image_size=16)
    resized = [record.getMessage() for record in caplog.records if "position embeddings" in record.getMessage()]
    assert resized == [
        f"Resized the position embeddings of {tmp_path} from 8x8 to 4x4 patches (bicubic), for image_size 16."
    ]
    assert classifier.vit.embeddings.position_embeddings.shape == (1, 1 + 16, TINY["hidden_size"])


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_a_mask_ratio_outside_0_1_is_refused(ratio):
    with pytest.raises(ValueError, match=rf"^mask_ratio={ratio} must be between 0 and 1 \(exclusive\)"):
        ViTForMaskedAutoencoding(mae_config(mask_ratio=ratio))


def test_a_decoder_wider_than_the_encoder_is_refused_naming_the_limit():
    with pytest.raises(
        ValueError,
        match=r"decoder_hidden_size=64 is wider than the encoder \(hidden_size=32\): the "
        r"limit is the encoder's width, 32",
    ):
        ViTForMaskedAutoencoding(mae_config(decoder_hidden_size=64))
    with pytest.raises(ValueError, match="decoder_hidden_size=12 must be a positive multiple of 4"):
        ViTForMaskedAutoencoding(mae_config(decoder_hidden_size=12, decoder_num_attention_heads=8))


def test_the_classifier_is_unchanged_by_the_masked_path():
    # The embeddings' new `visible_patches` is None for a classifier: the same computation as before (the saved
    # fixtures of tests/model/test_models_saved_before.py hold the numbers); here, all patches kept = none dropped.
    torch.manual_seed(0)
    classifier = ViTForImageClassification(ViTConfig(**TINY, num_labels=3)).eval()
    pixels = torch.randn(2, 3, 32, 32)
    everything = torch.arange(PATCHES).expand(2, -1)
    torch.testing.assert_close(
        classifier.vit(pixels).last_hidden_state,
        classifier.vit(pixels, visible_patches=everything).last_hidden_state,
        rtol=0,
        atol=0,
    )
