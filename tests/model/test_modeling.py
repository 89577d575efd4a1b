import pytest
import torch
from torch import nn

from tests.conftest import tiny_config
from vit_ft import ViTConfig, ViTForImageClassification, ViTModel
from vit_ft.model.modeling_vit_ft import classification_loss, sincos_position_embeddings

VARIANTS = {
    "cls": {},
    "mean": dict(pooling="mean"),
    "sincos": dict(position_embedding_type="sincos"),
    "registers": dict(num_register_tokens=2),
    "registers_no_class": dict(
        class_token=False, pooling="mean", num_register_tokens=3, prefix_position_embeddings=False
    ),
    "distilled": dict(use_distillation_token=True),
    "layer_scale": dict(layer_scale_init_value=0.1),
    "no_qkv_bias": dict(qkv_bias=False),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_shapes_and_every_parameter_gets_a_gradient(variant, pixel_values):
    model = ViTForImageClassification(tiny_config(**VARIANTS[variant]))
    out = model(pixel_values, labels=torch.tensor([0, 1, 4]), output_hidden_states=True)
    assert out.logits.shape == (3, 5)
    assert torch.isfinite(out.logits).all()
    config = model.config
    tokens = config.num_prefix_tokens + (config.image_size // config.patch_size) ** 2
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert out.hidden_states[-1].shape == (3, tokens, config.hidden_size)
    out.loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_token_order_and_counts():
    config = tiny_config(use_distillation_token=True, num_register_tokens=2)
    assert config.num_prefix_tokens == 4
    model = ViTModel(config)
    assert model.embeddings.position_embeddings.shape == (1, 4 + 64, 32)
    no_prefix_positions = ViTModel(tiny_config(num_register_tokens=2, prefix_position_embeddings=False))
    assert no_prefix_positions.embeddings.position_embeddings.shape == (1, 64, 32)


def test_eager_equals_sdpa(pixel_values):
    model = ViTForImageClassification(tiny_config(num_register_tokens=1)).eval()
    sdpa = model(pixel_values).logits
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(model(pixel_values).logits, sdpa, rtol=1e-5, atol=1e-5)


def test_attentions_come_from_the_eager_path_under_sdpa(pixel_values):
    model = ViTForImageClassification(tiny_config()).eval()
    out = model(pixel_values, output_attentions=True)
    assert len(out.attentions) == 2
    assert out.attentions[0].shape == (3, 4, 65, 65)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(3, 4, 65))
    torch.testing.assert_close(out.logits, model(pixel_values).logits, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(pixel_values):
    model = ViTForImageClassification(tiny_config(drop_path_rate=0.2, hidden_dropout_prob=0.1))
    labels = torch.tensor([0, 1, 2])

    def gradients():
        torch.manual_seed(1)
        model.zero_grad()
        model(pixel_values, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = gradients()
    model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.vit.layers)
    checkpointed = gradients()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)


def test_drop_path_rates_grow_with_depth_and_act_only_in_training(pixel_values):
    model = ViTForImageClassification(tiny_config(num_hidden_layers=3, drop_path_rate=0.3))
    assert [layer.drop_path_rate for layer in model.vit.layers] == pytest.approx([0.0, 0.15, 0.3])
    model.eval()
    torch.testing.assert_close(model(pixel_values).logits, model(pixel_values).logits)
    model.train()
    assert not torch.allclose(model(pixel_values).logits, model(pixel_values).logits)


def test_distillation_heads_average_in_eval(pixel_values):
    model = ViTForImageClassification(tiny_config(use_distillation_token=True)).eval()
    out = model(pixel_values)
    assert out.cls_logits.shape == out.distillation_logits.shape == (3, 5)
    torch.testing.assert_close(out.logits, (out.cls_logits + out.distillation_logits) / 2)
    hidden = model.vit(pixel_values).last_hidden_state
    torch.testing.assert_close(out.distillation_logits, model.distillation_classifier(hidden[:, 1]))
    torch.testing.assert_close(out.cls_logits, model.classifier(hidden[:, 0]))
    model.train()
    out = model(pixel_values)
    assert out.cls_logits is not None and out.distillation_logits is not None


def test_distillation_token_without_head_classifies_from_class_token(pixel_values):
    model = ViTForImageClassification(tiny_config(use_distillation_token=True, distillation_head=False)).eval()
    assert model.distillation_classifier is None
    hidden = model.vit(pixel_values).last_hidden_state
    torch.testing.assert_close(model(pixel_values).logits, model.classifier(hidden[:, 0]))


def test_mean_pooling_normalises_the_mean_of_patch_tokens(pixel_values):
    model = ViTModel(tiny_config(pooling="mean", num_register_tokens=2)).eval()
    out = model(pixel_values)
    expected = model.layernorm(out.last_hidden_state[:, 3:].mean(dim=1))
    torch.testing.assert_close(out.pooler_output, expected)


def test_interpolated_positions_at_another_size():
    model = ViTForImageClassification(tiny_config()).eval()
    large = torch.randn(2, 3, 48, 40)
    with pytest.raises(ValueError, match=r"48x40.*32x32"):
        model(large)
    out = model(large, interpolate_pos_encoding=True, output_hidden_states=True)
    assert out.hidden_states[0].shape == (2, 1 + 12 * 10, 32)
    same = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(same, interpolate_pos_encoding=True).logits, model(same).logits)


def test_interpolation_keeps_prefix_positions_and_resizes_the_grid():
    model = ViTModel(tiny_config(num_register_tokens=1))
    prefix, patches = model.embeddings._positions((6, 6), torch.device("cpu"))
    table = model.embeddings.position_embeddings
    torch.testing.assert_close(prefix, table[:, :2])
    assert patches.shape == (1, 36, 32)
    reference = nn.functional.interpolate(
        table[:, 2:].reshape(1, 8, 8, 32).permute(0, 3, 1, 2), size=(6, 6), mode="bicubic", align_corners=False
    )
    torch.testing.assert_close(patches, reference.permute(0, 2, 3, 1).reshape(1, 36, 32))


def test_sincos_positions():
    positions = sincos_position_embeddings((3, 4), 8)
    assert positions.shape == (1, 12, 8)
    # Token (row 1, col 2) is index 6: first quarter sin(row * omega), third quarter sin(col * omega).
    omega = torch.tensor([1.0, 0.01])
    torch.testing.assert_close(positions[0, 6, :2], torch.sin(1 * omega))
    torch.testing.assert_close(positions[0, 6, 4:6], torch.sin(2 * omega))
    torch.testing.assert_close(positions[0, 6, 6:], torch.cos(2 * omega))
    model = ViTModel(tiny_config(position_embedding_type="sincos"))
    assert model.embeddings.position_embeddings is None
    assert not any("position" in name for name, _ in model.named_parameters())


def test_layer_scale_initial_value():
    model = ViTModel(tiny_config(layer_scale_init_value=1e-4))
    assert torch.all(model.layers[0].layer_scale1.lambda1 == 1e-4)
    assert torch.all(model.layers[1].layer_scale2.lambda1 == 1e-4)


def test_losses_match_hand_computations():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    log_probs = logits.log_softmax(-1)
    hard = torch.tensor([0, 2])
    assert classification_loss(logits, hard, None).item() == pytest.approx(
        -(log_probs[0, 0] + log_probs[1, 2]).item() / 2
    )
    soft = torch.tensor([[0.9, 0.05, 0.05], [0.0, 0.5, 0.5]])
    assert classification_loss(logits, soft, None).item() == pytest.approx(-(soft * log_probs).sum(-1).mean().item())
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    probs = logits.sigmoid()
    bce = -(multi * probs.log() + (1 - multi) * (1 - probs).log()).mean()
    assert classification_loss(logits, multi, "multi_label_classification").item() == pytest.approx(bce.item())
    assert classification_loss(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0]), None).item() == 1.0
    with pytest.raises(ValueError, match=r"labels of shape \(2, 4\)"):
        classification_loss(logits, torch.zeros(2, 4), None)


def test_model_loss_takes_soft_targets(pixel_values):
    model = ViTForImageClassification(tiny_config()).eval()
    targets = torch.softmax(torch.randn(3, 5), -1)
    out = model(pixel_values, labels=targets)
    torch.testing.assert_close(out.loss, -(targets * out.logits.log_softmax(-1)).sum(-1).mean())


def test_wrong_channels_is_a_clear_error():
    model = ViTForImageClassification(tiny_config())
    with pytest.raises(ValueError, match=r"\(2, 1, 32, 32\).*\(batch, 3, height, width\)"):
        model(torch.randn(2, 1, 32, 32))


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(pooling="max"), "pooling='max'"),
        (dict(position_embedding_type="rope"), "position_embedding_type='rope'"),
        (dict(class_token=False), "pooling='cls' needs class_token=True"),
        (dict(hidden_size=30), "not divisible"),
        (dict(image_size=30), "not a multiple of patch_size"),
    ],
)
def test_config_rejects_bad_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**fields)


def test_return_dict_false_gives_tuples(pixel_values):
    model = ViTForImageClassification(tiny_config()).eval()
    logits = model(pixel_values, return_dict=False)[0]
    torch.testing.assert_close(logits, model(pixel_values).logits)
    assert isinstance(ViTConfig.from_preset("vit_tiny_patch16_224.augreg_in21k"), ViTConfig)


@pytest.mark.slow
def test_flex_attention_matches_sdpa(pixel_values):
    # torch's flex attention compiles its kernel (tens of seconds on CPU) and has no CPU backward: inference only.
    model = ViTForImageClassification(tiny_config()).eval()
    with torch.no_grad():
        sdpa = model(pixel_values).logits
        model.set_attn_implementation("flex_attention")
        torch.testing.assert_close(model(pixel_values).logits, sdpa, rtol=1e-5, atol=1e-5)


INFERENCE_VARIANTS = {
    "gelu": {},
    "gelu_tanh": dict(hidden_act="gelu_pytorch_tanh"),
    "quick_gelu": dict(hidden_act="quick_gelu"),  # no in-place form: runs out of place
    "layer_scale_distilled": dict(layer_scale_init_value=0.1, use_distillation_token=True, num_register_tokens=1),
}


@pytest.mark.parametrize("variant", INFERENCE_VARIANTS)
@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode])
def test_inference_path_gives_the_outputs_of_the_autograd_path(variant, no_grad, pixel_values):
    # Without autograd the blocks run three separate q/k/v products; in training one over the stacked weights.
    model = ViTForImageClassification(tiny_config(**INFERENCE_VARIANTS[variant])).eval()
    with_grad = model(pixel_values, output_hidden_states=True)
    assert with_grad.logits.requires_grad
    with no_grad():
        without = model(pixel_values, output_hidden_states=True)
    torch.testing.assert_close(without.logits, with_grad.logits, rtol=1e-6, atol=1e-6)
    for inference, reference in zip(without.hidden_states, with_grad.hidden_states, strict=True):
        torch.testing.assert_close(inference, reference, rtol=1e-6, atol=1e-6)
    # The block outputs handed back are distinct tensors: no later block wrote into an earlier one's output.
    assert len({states.data_ptr() for states in without.hidden_states}) == len(without.hidden_states)


# Modules whose outputs a feature extractor may hook ("" is the block itself).
@pytest.mark.parametrize("watched", ["mlp.fc1", "mlp.fc2", "mlp", "attention", "attention.o_proj", ""])
def test_a_hooked_module_keeps_the_values_it_was_handed(watched, pixel_values):
    # A feature extractor's forward hook sees the same values without autograd as with it.
    model = ViTForImageClassification(tiny_config()).eval()
    module = model.vit.layers[0].get_submodule(watched)
    seen = []
    handle = module.register_forward_hook(
        lambda module, args, output: seen.append(output[0] if isinstance(output, tuple) else output)
    )
    try:
        model(pixel_values)
        with torch.no_grad():
            model(pixel_values)
    finally:
        handle.remove()
    torch.testing.assert_close(seen[1], seen[0].detach(), rtol=1e-6, atol=1e-6)


def test_an_instance_forward_wrapper_keeps_the_values_it_was_handed(pixel_values):
    # As accelerate's add_hook_to_module: no torch hook, a forward replaced on the module instance.
    model = ViTForImageClassification(tiny_config()).eval()
    fc1 = model.vit.layers[0].mlp.fc1
    seen, original = [], fc1.forward

    def wrapped(hidden_states):
        seen.append(original(hidden_states))
        return seen[-1]

    fc1.forward = wrapped
    model(pixel_values)
    with torch.no_grad():
        model(pixel_values)
    torch.testing.assert_close(seen[1], seen[0].detach(), rtol=1e-6, atol=1e-6)


def test_a_replaced_activation_or_mlp_is_run_as_it_is_without_autograd(pixel_values):
    model = ViTForImageClassification(tiny_config()).eval()
    for layer in model.vit.layers:
        layer.mlp.activation_fn = nn.ReLU()
    torch.testing.assert_close(torch.no_grad()(model)(pixel_values).logits, model(pixel_values).logits.detach())

    class PlainMLP(nn.Module):  # takes the hidden states alone, as a user's replacement would
        def __init__(self, mlp):
            super().__init__()
            self.inner = mlp

        def forward(self, hidden_states):
            return self.inner.fc2(torch.tanh(self.inner.fc1(hidden_states)))

    for layer in model.vit.layers:
        layer.mlp = PlainMLP(layer.mlp)
    torch.testing.assert_close(torch.no_grad()(model)(pixel_values).logits, model(pixel_values).logits.detach())


def test_inference_under_autocast_gives_the_outputs_of_the_autograd_path(pixel_values):
    model = ViTForImageClassification(tiny_config()).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with_grad = model(pixel_values, output_hidden_states=True)
        with torch.no_grad():
            without = model(pixel_values, output_hidden_states=True)
    assert [s.dtype for s in without.hidden_states] == [s.dtype for s in with_grad.hidden_states]
    torch.testing.assert_close(without.logits, with_grad.logits, rtol=2e-2, atol=2e-2)
