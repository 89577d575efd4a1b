import pytest
import timm
import torch

from vit_ft import PRESETS, ViTConfig, ViTForImageClassification


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_with_timms_parameter_count(name):
    # Built on the meta device: parameter counts without allocating ViT-H's 632M weights.
    with torch.device("meta"):
        ours = ViTForImageClassification(ViTConfig.from_preset(name))
        # A few timm in21k feature extractors default to no head (num_classes=0); compare with the same head.
        reference = timm.create_model(name, pretrained=False, num_classes=1000)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in reference.parameters())
    assert ours.config.num_labels == 1000


def test_preset_overrides_and_unknown_name():
    config = ViTConfig.from_preset("vit_base_patch16_224", num_labels=10, drop_path_rate=0.1)
    assert (config.hidden_size, config.num_labels, config.drop_path_rate) == (768, 10, 0.1)
    assert ViTConfig.from_preset("deit_small_distilled_patch16_224").use_distillation_token
    with pytest.raises(ValueError, match=r"Unknown preset 'vit_base_patch8_224'. Known presets: deit_base"):
        ViTConfig.from_preset("vit_base_patch8_224")


def test_config_round_trips_through_json(tmp_path):
    config = ViTConfig.from_preset("vit_medium_patch16_reg4_gap_256", num_labels=3)
    config.save_pretrained(tmp_path)
    loaded = ViTConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.num_prefix_tokens == 4 and loaded.layer_scale_init_value == 1e-5
