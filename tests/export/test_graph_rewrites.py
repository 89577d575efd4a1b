"""The exported graph's rewrites: attention on (batch, tokens, width), a last block computing only read tokens."""

import numpy as np
import onnx
import pytest

from tests.conftest import tiny_config
from tests.export.test_export import _assert_parity, _save
from vit_ft.checkpoints.loading import load_model
from vit_ft.export.onnx_export import export_onnx, write_onnx_models
from vit_ft.export.provenance import weights_digest
from vit_ft.export.runtime import INPUT_NAME, open_session


def _exported(tmp_path, **config_fields) -> onnx.ModelProto:
    model_dir = _save(tmp_path / "model", tiny_config(**config_fields))
    return onnx.load(str(export_onnx(model_dir, str(tmp_path / "export")) / "onnx" / "model.onnx"))


def test_attention_runs_on_tokens_without_transposes(tmp_path):
    exported = _exported(tmp_path)
    operators = [node.op_type for node in exported.graph.node]
    assert operators.count("Transpose") == 1  # the patch embedding: (batch, width, patches) to (batch, patches, width)
    heads = [
        onnx.helper.get_node_attr_value(node, "q_num_heads")
        for node in exported.graph.node
        if node.op_type == "Attention"
    ]
    assert heads == [tiny_config().num_attention_heads] * tiny_config().num_hidden_layers


def _tokens_normalised(model: onnx.ModelProto) -> list[int]:
    """The token count of each LayerNorm over (batch, tokens, width), in graph order (a pooled one is left out)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {value.name: value.type.tensor_type.shape.dim for value in inferred.graph.value_info}
    return [
        shapes[node.output[0]][1].dim_value
        for node in inferred.graph.node
        if node.op_type == "LayerNormalization" and len(shapes[node.output[0]]) == 3
    ]


@pytest.mark.parametrize(
    ("name", "config_fields", "tokens_read"),
    [
        ("cls", {}, 1),
        ("registers", dict(num_register_tokens=2), 1),
        ("distillation_token", dict(use_distillation_token=True), 2),  # both heads' tokens, selected once
        ("mean", dict(pooling="mean", class_token=False), None),  # every token is read
    ],
)
def test_the_last_block_computes_only_the_tokens_the_head_reads(name, config_fields, tokens_read, tmp_path):
    config = tiny_config(**config_fields)
    tokens = (config.image_size // config.patch_size) ** 2 + config.num_prefix_tokens
    blocks = config.num_hidden_layers
    # Two LayerNorms a block and, with a token read, the final one over the tokens. The last block's first LayerNorm
    # feeds its keys and values, so it normalises every token; its second one and the final one only those read.
    expected = [tokens] * (2 * blocks) if tokens_read is None else [tokens] * (2 * blocks - 1) + [tokens_read] * 2
    assert _tokens_normalised(_exported(tmp_path, **config_fields)) == expected


def test_the_rewrites_can_be_left_out_and_change_no_logit(tmp_path):
    model_dir = _save(tmp_path / "model", tiny_config(use_distillation_token=True))
    model = load_model(model_dir)
    digest = weights_digest(model_dir)
    plain = write_onnx_models(model, tmp_path / "plain" / "onnx", graph_rewrites=False, source_digest=digest)[0]
    rewritten = write_onnx_models(model, tmp_path / "rewritten" / "onnx", source_digest=digest)[0]
    operators = [node.op_type for node in onnx.load(str(plain)).graph.node]
    assert operators.count("Transpose") == 4 * model.config.num_hidden_layers + 1  # torch's export as it is
    pixel_values = np.random.default_rng(0).standard_normal((7, 3, 32, 32), dtype=np.float32)
    plain_logits, rewritten_logits = (
        open_session(path).run(None, {INPUT_NAME: pixel_values})[0] for path in (plain, rewritten)
    )
    np.testing.assert_allclose(rewritten_logits, plain_logits, rtol=0, atol=1e-5)


def test_an_opset_18_export_computes_fewer_tokens_too_and_keeps_its_logits(tmp_path):
    # Opset 18 spells attention out (MatMul, Softmax, MatMul): the selection stops at its output, after the MLP.
    model_dir = _save(tmp_path / "model", tiny_config())
    export_dir = export_onnx(model_dir, str(tmp_path / "export"), opset=18)
    _assert_parity(model_dir, export_dir)
    config = tiny_config()
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    expected = [tokens] * (2 * config.num_hidden_layers - 1) + [1, 1]
    assert _tokens_normalised(onnx.load(str(export_dir / "onnx" / "model.onnx"))) == expected
