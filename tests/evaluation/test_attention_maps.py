"""Heat maps: every method against a hand computation (from `output_attentions`, or a block written out with AttnLRP's
rules), prefix tokens, image sizes, inference mode, fused attention, LoRA, remote code without vit-ft, and
`vit-ft explain`."""

import functools
import logging

import pytest
import torch
from peft import LoraConfig, get_peft_model
from PIL import Image
from transformers import ViTImageProcessor

from tests.conftest import run_without_vit_ft, tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.cli import main
from vit_ft.evaluation import attention_maps as attention_module
from vit_ft.evaluation.attention_maps import CLASS_SPECIFIC, DEFAULT_METHOD, METHODS, attention_maps
from vit_ft.transformers_internals import attention_implementation

PIXELS = (2, 3, 32, 32)


def _model(**overrides) -> ViTForImageClassification:
    # initializer_range 0.3: attention far from uniform, so that the methods give different maps.
    torch.manual_seed(0)
    return ViTForImageClassification(tiny_config(initializer_range=0.3, **overrides)).eval()


def _scaled(maps: torch.Tensor) -> torch.Tensor:
    return maps / maps.flatten(1).amax(dim=1)[:, None, None]


def _attentions(model, pixel_values) -> list[torch.Tensor]:
    """Head-mean attention of every layer, `(batch, tokens, tokens)`, first layer first."""
    with torch.no_grad():
        outputs = model(pixel_values, output_attentions=True)
    return [attention.mean(dim=1) for attention in outputs.attentions]


def _rollout_by_hand(model, pixel_values) -> torch.Tensor:
    """Abnar & Zuidema: (A + I) row-normalised per layer, multiplied from the last layer down; class-token row."""
    layers = []
    for attention in _attentions(model, pixel_values):
        mixed = attention + torch.eye(attention.shape[-1])
        layers.append(mixed / mixed.sum(-1, keepdim=True))
    rolled = functools.reduce(torch.matmul, reversed(layers))  # A_L ... A_1
    return rolled[:, 0, model.config.num_prefix_tokens :]


def test_rollout_and_last_layer_match_hand_computations():
    model = _model()
    pixel_values = torch.randn(PIXELS)
    grid = (8, 8)
    rollout = attention_maps(model, pixel_values, "rollout")
    torch.testing.assert_close(rollout.patches, _scaled(_rollout_by_hand(model, pixel_values).reshape(2, *grid)))
    last = attention_maps(model, pixel_values, "last_layer")
    by_hand = _attentions(model, pixel_values)[-1][:, 0, 1:].reshape(2, *grid)
    torch.testing.assert_close(last.patches, _scaled(by_hand))
    assert not torch.allclose(rollout.patches, last.patches, atol=1e-3)
    assert rollout.patches.flatten(1).amax(1).tolist() == [1.0, 1.0]
    with torch.no_grad():
        torch.testing.assert_close(rollout.logits, model(pixel_values).logits)
    assert rollout.labels.tolist() == rollout.logits.argmax(-1).tolist()


def test_gradient_rollout_matches_chefer_rule_and_is_class_specific():
    model = _model(num_hidden_layers=1)
    pixel_values = torch.randn(PIXELS)
    maps = attention_maps(model, pixel_values, "gradient_rollout", labels=torch.tensor([1, 3]))
    # One layer: R = I + mean_heads((dlogit/dA * A)+); the class-token row over the patches.
    inputs = pixel_values.clone().requires_grad_(True)
    outputs = model(inputs, output_attentions=True)
    (attention,) = outputs.attentions
    (gradient,) = torch.autograd.grad(outputs.logits[0, 1] + outputs.logits[1, 3], attention)
    by_hand = (gradient * attention).clamp(min=0).mean(dim=1)[:, 0, 1:].reshape(2, 8, 8)
    torch.testing.assert_close(maps.patches, _scaled(by_hand))
    assert maps.labels.tolist() == [1, 3]
    other = attention_maps(model, pixel_values, "gradient_rollout", labels=torch.tensor([2, 0]))
    assert (other.patches - maps.patches).abs().max() > 0.05
    predicted = attention_maps(model, pixel_values, "gradient_rollout")
    assert predicted.labels.tolist() == maps.logits.argmax(-1).tolist()
    assert all(parameter.grad is None for parameter in model.parameters())


def _one_block_with_lrp_rules(model, pixel_values, label: int):
    """
    A one-block vit_ft model's forward written out, with AttnLRP's rules as gradients: the LayerNorms' standard
    deviation held constant, the activation's gradient output / input, half the gradient through each factor of
    the two attention products. Returns the explained logits, the block's input tokens and its attention (both
    kept for their gradients).
    """

    def layer_norm(norm, x):
        deviation = (x.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt().detach()
        return (x - x.mean(-1, keepdim=True)) / deviation * norm.weight + norm.bias

    def half(x):  # the value, with half its gradient
        return 0.5 * x + 0.5 * x.detach()

    vit = model.vit
    block, heads = vit.layers[0], model.config.num_attention_heads
    tokens = vit.embeddings(pixel_values).detach().requires_grad_(True)  # (batch, tokens, hidden)
    batch, length, hidden = tokens.shape
    normed = layer_norm(block.layernorm_before, tokens)
    split = (batch, length, heads, hidden // heads)
    query, key = (
        half(projection(normed)).view(split).transpose(1, 2)
        for projection in (block.attention.q_proj, block.attention.k_proj)
    )
    value = block.attention.v_proj(normed).view(split).transpose(1, 2)
    attention = (query @ key.transpose(-1, -2) * block.attention.scaling).softmax(-1)  # (batch, heads, tokens, tokens)
    attention.retain_grad()
    mixed = half(attention @ value).transpose(1, 2).reshape(batch, length, hidden)
    states = tokens + block.attention.o_proj(mixed)
    inner = block.mlp.fc1(layer_norm(block.layernorm_after, states))
    activated = block.mlp.activation_fn(inner)
    identity = inner * (activated / inner).detach() + (activated - inner * (activated / inner)).detach()
    states = states + block.mlp.fc2(identity)
    logits = model.classifier(layer_norm(vit.layernorm, states)[:, 0])
    return logits[:, label], tokens, attention


def test_attnlrp_and_transformer_attribution_match_the_rules_by_hand():
    model = _model(num_hidden_layers=1)
    pixel_values = torch.randn(PIXELS)
    explained, tokens, attention = _one_block_with_lrp_rules(model, pixel_values, 2)
    explained.sum().backward()
    relevance = (tokens * tokens.grad).sum(-1)[:, 1:].clamp(min=0).reshape(2, 8, 8)  # gradient times input
    torch.testing.assert_close(attention_maps(model, pixel_values, "attnlrp", labels=2).patches, _scaled(relevance))
    # Chefer et al. 2021 (CVPR), one layer: R = I + mean_heads((plain gradient * A * LRP gradient)+), class-token row.
    plain = pixel_values.clone().requires_grad_(True)
    outputs = model(plain, output_attentions=True)
    (gradient,) = torch.autograd.grad(outputs.logits[:, 2].sum(), outputs.attentions)
    weighted = (gradient * attention * attention.grad).clamp(min=0).mean(dim=1)[:, 0, 1:].reshape(2, 8, 8)
    maps = attention_maps(model, pixel_values, "transformer_attribution", labels=2)
    torch.testing.assert_close(maps.patches, _scaled(weighted))


@pytest.mark.parametrize("method", CLASS_SPECIFIC)
def test_class_specific_methods_depend_on_the_class_and_leave_no_gradients(method):
    model = _model()
    pixel_values = torch.randn(PIXELS)
    maps = attention_maps(model, pixel_values, method, labels=torch.tensor([1, 3]))
    assert maps.labels.tolist() == [1, 3]
    other = attention_maps(model, pixel_values, method, labels=torch.tensor([2, 0]))
    assert (other.patches - maps.patches).abs().max() > 0.05
    predicted = attention_maps(model, pixel_values, method)
    assert predicted.labels.tolist() == maps.logits.argmax(-1).tolist()
    assert all(parameter.grad is None for parameter in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(maps.logits, model(pixel_values).logits)  # the LRP rules keep every value


def test_relevance_methods_name_the_modules_a_model_lacks():
    model = _model()
    mlp = model.vit.layers[1].mlp
    del mlp.activation_fn
    mlp.activation_fn = torch.nn.functional.gelu  # a function: the same forward, no module to hook
    for method in ("attnlrp", "transformer_attribution"):
        with pytest.raises(
            ValueError,
            match=r"^ViTForImageClassification has fewer modules named activation_fn than "
            r"its 2 layers: the relevance methods need",
        ):
            attention_maps(model, torch.randn(PIXELS), method)
    assert attention_maps(model, torch.randn(PIXELS), "gradient_rollout").patches.shape == (2, 8, 8)


@pytest.mark.parametrize(
    ("overrides", "rows"),
    [
        # class token, distillation token (its head averages with the class head's), 2 registers: 4 prefix tokens
        (dict(use_distillation_token=True, num_register_tokens=2), slice(0, 2)),
        # distillation token without a head of its own: only the class token feeds the logits
        (dict(use_distillation_token=True, distillation_head=False), slice(0, 1)),
        # mean pooling without a class token, 3 registers: the mean of the image tokens' rows
        (dict(class_token=False, pooling="mean", num_register_tokens=3, prefix_position_embeddings=False), "image"),
    ],
)
def test_prefix_tokens_are_not_image_positions(overrides, rows):
    model = _model(**overrides)
    prefix = model.config.num_prefix_tokens
    pixel_values = torch.randn(PIXELS)
    last = _attentions(model, pixel_values)[-1]  # (batch, tokens, tokens)
    assert last.shape[-1] == prefix + 64
    rows = slice(prefix, None) if rows == "image" else rows
    by_hand = last[:, rows, prefix:].mean(dim=1).reshape(2, 8, 8)
    torch.testing.assert_close(attention_maps(model, pixel_values, "last_layer").patches, _scaled(by_hand))
    for method in METHODS:
        patches = attention_maps(model, pixel_values, method).patches
        assert patches.shape == (2, 8, 8) and patches.flatten(1).amax(1).tolist() == [1.0, 1.0], method


def test_any_image_size_the_positions_interpolate_to():
    model = _model()
    maps = attention_maps(model, torch.randn(1, 3, 40, 48), "rollout")
    assert maps.patches.shape == (1, 10, 12) and maps.pixels.shape == (1, 40, 48)
    # 35x37 pixels: 8x9 patches cover 32x36; the rest, which the model never sees, is 0.
    odd = attention_maps(model, torch.randn(1, 3, 35, 37), "gradient_rollout")
    assert odd.patches.shape == (1, 8, 9) and odd.pixels.shape == (1, 35, 37)
    assert odd.pixels[:, 32:].abs().sum() == 0 and odd.pixels[:, :, 36:].abs().sum() == 0
    assert odd.pixels[:, :32, :36].amax() > 0.5


def test_inference_mode_restores_the_model_and_a_fused_kernel_gives_the_same_maps(caplog):
    model = _model()
    model.set_attn_implementation("eager")
    pixel_values = torch.randn(PIXELS)
    expected = {method: attention_maps(model, pixel_values, method).patches for method in METHODS}
    model.train()
    model.set_attn_implementation("sdpa")
    with caplog.at_level(logging.WARNING), torch.inference_mode():
        for method in METHODS:  # gradient_rollout too: it leaves inference mode for its own forward pass
            torch.testing.assert_close(attention_maps(model, pixel_values, method).patches, expected[method])
    # The model computes a call that asks for the attention probabilities eagerly: nothing to switch, nothing to say.
    assert caplog.records == []
    assert model.training and attention_implementation(model.config) == "sdpa"


def test_lora_adapter_maps_are_the_merged_models():
    model = _model()
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = get_peft_model(model, config).eval()
    pixel_values = torch.randn(PIXELS)
    maps = {method: attention_maps(adapted, pixel_values, method) for method in METHODS}
    merged = adapted.merge_and_unload()
    for method in METHODS:
        torch.testing.assert_close(maps[method].patches, attention_maps(merged, pixel_values, method).patches)
    assert not torch.allclose(maps["rollout"].patches, attention_maps(_model(), pixel_values, "rollout").patches)


def test_one_label_explains_every_image_of_the_batch():
    model, pixel_values = _model(num_labels=10), torch.randn(PIXELS)
    one = attention_maps(model, pixel_values, "gradient_rollout", labels=7)
    each = attention_maps(model, pixel_values, "gradient_rollout", labels=[7, 7])
    torch.testing.assert_close(one.patches, each.patches, rtol=0, atol=0)
    assert one.labels.tolist() == [7, 7]
    assert all(patches.amax() == 1 for patches in one.patches)  # no map is all zero


def test_labels_outside_the_classes_are_refused():
    model, pixel_values = _model(), torch.randn(PIXELS)
    for method in ("rollout", "gradient_rollout"):
        for labels in (5, [3, -1], torch.tensor([12, 0])):
            with pytest.raises(
                ValueError,
                match=r"labels \[(5|-1|12)\] are not classes of the model, whose ids run "
                r"from 0 to 4\.",
            ):
                attention_maps(model, pixel_values, method, labels=labels)
    with pytest.raises(
        ValueError,
        match=r"labels of shape \(3,\) and type torch.int64: give one integer class id, "
        r"or one per image \(2\)\.",
    ):
        attention_maps(model, pixel_values, "gradient_rollout", labels=[1, 2, 3])


@pytest.mark.parametrize("method", METHODS)
def test_pixels_the_model_cannot_read_are_refused_by_name(method):
    model = _model()
    with pytest.raises(
        ValueError,
        match=r"^pixel_values are torch.uint8, not floating point: pass the images through "
        "the model's image processor",
    ):
        attention_maps(model, torch.randint(0, 255, PIXELS, dtype=torch.uint8), method)
    for shape in ((0, 3, 32, 32), (2, 3, 1, 1)):
        with pytest.raises(ValueError) as error:
            attention_maps(model, torch.randn(shape), method)
        assert str(error.value) == (
            f"pixel_values of shape {shape}: expected (batch, 3, height, width) with at least "
            "one image of at least one 4x4 patch, e.g. the model's (3, 32, 32); resize the "
            "images with the model's image processor."
        )


_REMOTE_CHILD = """
import importlib.util, sys
import torch
from transformers import AutoModelForImageClassification

module_file, model_dir, pixels, out = sys.argv[1:]
spec = importlib.util.spec_from_file_location("attention_maps", module_file)
attention_maps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(attention_maps)
model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert "vit_ft" not in sys.modules
maps = {method: attention_maps.attention_maps(model, torch.load(pixels), method).patches
        for method in attention_maps.METHODS}
torch.save(maps, out)
"""


def test_remote_code_model_without_vit_ft(tmp_path):
    # The module imports nothing from vit_ft: loaded from its file where vit_ft cannot be imported, on a model that
    # transformers builds from the remote code saved beside it, it gives vit_ft's maps.
    model = _model(num_register_tokens=1, use_distillation_token=True)
    model.save_pretrained(tmp_path / "model")
    pixel_values = torch.randn(PIXELS)
    torch.save(pixel_values, tmp_path / "pixels.pt")
    run_without_vit_ft(
        _REMOTE_CHILD, attention_module.__file__, str(tmp_path / "model"), "pixels.pt", "maps.pt", workdir=tmp_path
    )
    remote = torch.load(tmp_path / "maps.pt")
    for method in METHODS:
        torch.testing.assert_close(remote[method], attention_maps(model, pixel_values, method).patches)


# vit-ft explain


@pytest.fixture
def saved_model(tmp_path) -> str:
    model = _model(id2label={0: "cat", 1: "dog", 2: "fox", 3: "owl", 4: "yak"})
    model.save_pretrained(tmp_path / "model")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


def _image(path) -> str:
    Image.fromarray(torch.randint(0, 255, (40, 30, 3), dtype=torch.uint8).numpy()).save(path)
    return str(path)


def test_explain_writes_one_png_per_image(saved_model, tmp_path, capsys):
    images = [_image(tmp_path / "a.png"), _image(tmp_path / "b.jpg")]
    output = tmp_path / "maps"
    main(
        [
            "explain",
            "--model",
            saved_model,
            *images,
            "--output",
            str(output),
            "--method",
            "gradient_rollout",
            "--label",
            "fox",
            "--top_k",
            "2",
        ]
    )
    assert sorted(path.name for path in output.iterdir()) == ["a_gradient_rollout.png", "b_gradient_rollout.png"]
    assert capsys.readouterr().out.splitlines() == [
        f"Wrote {output / 'a_gradient_rollout.png'}",
        f"Wrote {output / 'b_gradient_rollout.png'}",
    ]
    with Image.open(output / "a_gradient_rollout.png") as picture:
        assert picture.size == (1200, 400)


def test_explain_uses_the_default_method_unless_told(saved_model, tmp_path, capsys):
    main(["explain", "--model", saved_model, _image(tmp_path / "a.png"), "--output", str(tmp_path / "maps")])
    assert capsys.readouterr().out == f"Wrote {tmp_path / 'maps' / f'a_{DEFAULT_METHOD}.png'}\n"
    assert DEFAULT_METHOD in CLASS_SPECIFIC


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.png"], "vit-ft explain: Cannot read image missing.png: [Errno 2] No such file or directory"),
        (
            ["{image}", "--label", "wolf"],
            "vit-ft explain: --label 'wolf' is not a class of {model}; its classes are: cat, dog, fox, owl, yak.",
        ),
        (
            ["{image}", "--method", "saliency"],
            "vit-ft explain: Unknown attention-map method 'saliency': choose among rollout, gradient_rollout, "
            "last_layer, attnlrp, transformer_attribution.",
        ),
    ],
)
def test_explain_errors_in_one_line(saved_model, tmp_path, arguments, message):
    image = _image(tmp_path / "a.png")
    arguments = [argument.format(image=image) for argument in arguments]
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--model", saved_model, *arguments, "--output", str(tmp_path / "maps")])
    text = str(exit_info.value.code)
    assert text.startswith(message.format(model=saved_model)) and "\n" not in text
    assert not (tmp_path / "maps").exists()
