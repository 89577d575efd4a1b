"""Converting timm VisionTransformer weights, written on disk by timm itself, into vit_ft."""

import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

from vit_ft import ViTConfig, ViTForImageClassification
from vit_ft.checkpoints.key_conversion import convert_timm_state_dict
from vit_ft.cli import main as cli_main

TIMM_TINY = dict(embed_dim=32, depth=2, num_heads=4, mlp_ratio=4.0, num_classes=5)
OURS_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=5)
# (timm keyword arguments, the equivalent vit_ft fields)
CASES = {
    "p16_224": (dict(img_size=224, patch_size=16), dict(image_size=224, patch_size=16)),
    "p14_224": (dict(img_size=224, patch_size=14), dict(image_size=224, patch_size=14)),
    "p32_384_no_qkv_bias": (
        dict(img_size=384, patch_size=32, qkv_bias=False),
        dict(image_size=384, patch_size=32, qkv_bias=False),
    ),
    "registers_embed_class": (
        dict(img_size=64, patch_size=16, reg_tokens=2),
        dict(image_size=64, patch_size=16, num_register_tokens=2),
    ),
    "registers_gap": (
        dict(img_size=64, patch_size=16, reg_tokens=4, class_token=False, no_embed_class=True, global_pool="avg"),
        dict(
            image_size=64,
            patch_size=16,
            num_register_tokens=4,
            class_token=False,
            prefix_position_embeddings=False,
            pooling="mean",
        ),
    ),
    "layer_scale_avg": (
        dict(img_size=64, patch_size=16, init_values=1e-2, global_pool="avg"),
        dict(image_size=64, patch_size=16, layer_scale_init_value=1e-2, pooling="mean"),
    ),
}


def _randomise(model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.mark.parametrize("case", CASES)
def test_timm_logits_match(case):
    timm_kwargs, fields = CASES[case]
    source = _randomise(VisionTransformer(**TIMM_TINY, **timm_kwargs))
    model = ViTForImageClassification(ViTConfig(**OURS_TINY, **fields)).eval()
    model.load_state_dict(convert_timm_state_dict(source.state_dict()), strict=True)
    pixels = torch.randn(2, 3, fields["image_size"], fields["image_size"])
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels), rtol=1e-4, atol=1e-4)


def test_timm_distilled_deit_logits_match():
    source = _randomise(VisionTransformerDistilled(**TIMM_TINY, img_size=64, patch_size=16))
    model = ViTForImageClassification(
        ViTConfig(**OURS_TINY, image_size=64, patch_size=16, use_distillation_token=True)
    ).eval()
    model.load_state_dict(convert_timm_state_dict(source.state_dict()), strict=True)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels), rtol=1e-4, atol=1e-4)
        source.set_distilled_training(True)
        source.train()
        model.train()
        cls_logits, dist_logits = source(pixels)
        out = model(pixels)
    torch.testing.assert_close(out.cls_logits, cls_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.distillation_logits, dist_logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name, suffix, mean",
    [
        ("vit_tiny_patch16_224", ".safetensors", [0.5, 0.5, 0.5]),
        ("deit_tiny_distilled_patch16_224", ".pth", [0.485, 0.456, 0.406]),
        ("vit_medium_patch16_reg4_gap_256", ".bin", [0.5, 0.5, 0.5]),
    ],
)
def test_convert_command_writes_a_complete_directory(tmp_path, name, suffix, mean):
    source = _randomise(timm.create_model(name, pretrained=False, num_classes=7))
    weights = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(weights))
    else:
        torch.save(source.state_dict(), weights)
    output = tmp_path / "converted"
    cli_main(["convert", "--from", "timm", "--timm_model", name, "--weights", str(weights), "--output", str(output)])
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_vit_ft.py"} <= {
        p.name for p in output.iterdir()
    }
    processor = json.loads((output / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx(mean)
    side = source.default_cfg["input_size"][-1]
    assert processor["size"] == {"height": side, "width": side}
    model = ViTForImageClassification.from_pretrained(output).eval()
    assert model.config.num_labels == 7
    size = model.config.image_size
    pixels = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, source(pixels), rtol=1e-4, atol=1e-4)


def test_unknown_timm_model_lists_the_known_ones(tmp_path):
    weights = tmp_path / "w.safetensors"
    save_file({"cls_token": torch.zeros(1, 1, 8)}, str(weights))
    with pytest.raises(SystemExit, match=r"Unknown preset 'vit_gigantic_patch16_224'.*vit_base_patch16_224"):
        cli_main(
            [
                "convert",
                "--from",
                "timm",
                "--timm_model",
                "vit_gigantic_patch16_224",
                "--weights",
                str(weights),
                "--output",
                str(tmp_path / "out"),
            ]
        )


def test_weights_of_another_model_name_the_first_mismatch(tmp_path):
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    weights = tmp_path / "tiny.safetensors"
    save_file(source.state_dict(), str(weights))
    with pytest.raises(
        SystemExit,
        match=r"'vit.embeddings.cls_token' has shape \(1, 1, 192\) in the file, "
        r"\(1, 1, 384\) in vit_small_patch16_224",
    ):
        cli_main(
            [
                "convert",
                "--from",
                "timm",
                "--timm_model",
                "vit_small_patch16_224",
                "--weights",
                str(weights),
                "--output",
                str(tmp_path / "out"),
            ]
        )


def test_unsupported_timm_features_are_named():
    with pytest.raises(ValueError, match=r"blocks.0.attn.q_norm.weight"):
        convert_timm_state_dict({"blocks.0.attn.q_norm.weight": torch.ones(4)})
