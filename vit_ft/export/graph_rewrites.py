"""Rewrites of the exported graph: the same logits with less work (docs/deployment.md, "The graph's rewrites").

torch's exporter writes the model as PyTorch runs it. Two things PyTorch does are wasted in an exported classifier:

1. Each block splits q, k and v into heads (Reshape, Transpose) for the ONNX `Attention` node and merges its output
   back: four Transposes a block. `Attention` takes (batch, tokens, width) itself when told the number of heads.
2. The last block computes every token, but the head reads one (the class token) or two (with a distillation token).
   A token selection (a Gather on the token axis) moves up through every operation that works token by token
   (LayerNorm, the MLP, the residual adds, attention's output), so the last block computes only the selected tokens,
   from keys and values of all. With mean pooling every token is read and nothing changes.

Both are pattern rules of onnxscript's rewriter, applied until none matches; the exported file's parity with PyTorch
is checked after them (`onnx_export._check_parity`).
"""

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import CommonSubexpressionEliminationPass, RemoveUnusedNodesPass
from onnxscript.rewriter import RewritePass, pattern

TOKEN_AXIS = 1  # of (batch, tokens, width)
HEADS_FIRST = [0, 2, 1, 3]  # (batch, tokens, heads, head width) <-> (batch, heads, tokens, head width)
# The Attention attributes the rule carries over (causal, softcap and the extra output at their defaults only): with
# any other attribute, or a mask input, it leaves the node alone.
PLAIN_ATTENTION_ATTRIBUTES = {"scale", "is_causal", "qk_matmul_output_mode", "softcap"}
# Passes until no rule matches: each moves a selection up by at least one node, and a block is about a dozen. Passes
# left unused cost nothing (early stop); a selection stopped early is still correct, only less of it is pruned.
MAX_PASSES = 40


def rewrite_for_inference(model: ir.Model) -> ir.Model:
    """`model` (torch's export, in onnx_ir) with attention on (batch, tokens, width) and only read tokens computed."""
    passes = ir.passes.PassManager(
        [RewritePass(_RULES), CommonSubexpressionEliminationPass(), RemoveUnusedNodesPass()],
        steps=MAX_PASSES,
        early_stop=True,
    )
    return passes(model).model


def _constant(value: ir.Value) -> np.ndarray | None:
    tensor = ir.convenience.get_const_tensor(value)
    return None if tensor is None else tensor.numpy()


def _is_tokens(value: ir.Value) -> bool:
    """Whether `value` is known to be (batch, tokens, width)."""
    return value.shape is not None and len(value.shape) == 3


def _fail(reason: str) -> pattern.MatchResult:
    return pattern.MatchResult().fail(reason)


class AttentionOnTokens(pattern.RewriteRuleClassBase):
    """Reshape-Transpose of q, k and v into heads, Attention, and back: one Attention told the number of heads."""

    def pattern(self, op, query, key, value, heads_shape, tokens_shape):
        def into_heads(x):
            return op.Transpose(op.Reshape(x, heads_shape), perm=HEADS_FIRST)

        attention = op.Attention(into_heads(query), into_heads(key), into_heads(value), _outputs=["attention"])
        return op.Reshape(op.Transpose(attention, perm=HEADS_FIRST), tokens_shape)

    def check(self, context, query, key, value, heads_shape, tokens_shape, attention, **_):
        heads, tokens = _constant(heads_shape), _constant(tokens_shape)
        if heads is None or tokens is None or heads.shape != (4,) or tokens.shape != (3,):
            return _fail("the shapes are not constant (batch, tokens, heads, head width) and (batch, tokens, width)")
        if heads[2] * heads[3] != tokens[2] or not all(_is_tokens(x) for x in (query, key, value)):
            return _fail("not a split of the width into heads")
        node = attention.producer()
        if set(node.attributes) - PLAIN_ATTENTION_ATTRIBUTES or node.attributes.get_int("is_causal", 0):
            return _fail("attention with attributes the rule does not carry over")
        if node.attributes.get_float("softcap", 0.0) or node.attributes.get_int("qk_matmul_output_mode", 0):
            return _fail("attention with a softcap or another output")
        return True

    def rewrite(self, op, query, key, value, heads_shape, attention, **_):
        heads = int(_constant(heads_shape)[2])
        scale = attention.producer().attributes.get("scale")
        kept = {} if scale is None else {"scale": scale.as_float()}
        return op.Attention(query, key, value, q_num_heads=heads, kv_num_heads=heads, **kept)


class SelectTokensOnce(pattern.RewriteRuleClassBase):
    """
    x[:, i], one token, as a Gather of the tokens selected from x (0 and 1 with a distillation token), then of i among
    them, then a Squeeze: the selection keeps the token axis, as the operations above need, and is one node for both
    classifier heads, so it can move up.
    """

    def pattern(self, op, x, index):
        return op.Gather(x, index, axis=TOKEN_AXIS)

    def check(self, context, x, index, **_):
        token = _constant(index)
        if token is None or token.ndim != 0 or not _is_tokens(x):
            return _fail("not one constant token of a (batch, tokens, width) value")
        return True

    def rewrite(self, op, x, index, **_):
        token = int(_constant(index))
        selected = sorted(_tokens_selected_from(x) or {token})
        tokens = op.Gather(x, op.Constant(value=_indices(selected)), axis=TOKEN_AXIS)
        if len(selected) > 1:
            tokens = op.Gather(tokens, op.Constant(value=_indices([selected.index(token)])), axis=TOKEN_AXIS)
        return op.Squeeze(tokens, op.Constant(value=_indices([TOKEN_AXIS])))


def _tokens_selected_from(x: ir.Value) -> set[int]:
    """The tokens that x's Gathers on the token axis select; none when x has a consumer of another kind."""
    tokens = set()
    for consumer, _ in x.uses():
        index = _constant(consumer.inputs[1]) if consumer.op_type == "Gather" else None
        if index is None or index.ndim > 1 or consumer.attributes.get_int("axis", 0) != TOKEN_AXIS:
            return set()
        tokens.update(int(token) for token in index.reshape(-1))
    return tokens


def _indices(values: list[int]) -> ir.Tensor:
    return ir.tensor(np.array(values, dtype=np.int64))


class _SelectionMovesUp(pattern.RewriteRuleClassBase):
    """Gather(f(x, ...), tokens) as f(Gather(x, tokens), ...), for an operation f that works token by token."""

    def check(self, context, tokens, **_):
        selected = _constant(tokens)
        return True if selected is not None and selected.ndim == 1 else _fail("not a constant list of tokens")

    @staticmethod
    def _select(op, x: ir.Value, tokens: ir.Value) -> ir.Value:
        return op.Gather(x, tokens, axis=TOKEN_AXIS)


class SelectionBeforeElementwise(_SelectionMovesUp):
    """Through a function of one tensor: GELU and the like."""

    def __init__(self, op_type: str):
        super().__init__(f"SelectionBefore{op_type}")
        self.op_type = op_type

    def pattern(self, op, x, tokens):
        return op.Gather(getattr(op, self.op_type)(x, _outputs=["result"]), tokens, axis=TOKEN_AXIS)

    def rewrite(self, op, x, tokens, result, **_):
        return getattr(op, self.op_type)(self._select(op, x, tokens), **result.producer().attributes)


class SelectionBeforeBroadcast(_SelectionMovesUp):
    """Through an elementwise operation of two tensors (the residual add, a bias, layer scale): each input with a
    token axis is selected, an input broadcast over the tokens is kept."""

    def __init__(self, op_type: str):
        super().__init__(f"SelectionBefore{op_type}")
        self.op_type = op_type

    def pattern(self, op, a, b, tokens):
        return op.Gather(getattr(op, self.op_type)(a, b), tokens, axis=TOKEN_AXIS)

    def check(self, context, a, b, tokens, **_):
        if None in (_has_token_axis(a), _has_token_axis(b)) or not (_has_token_axis(a) or _has_token_axis(b)):
            return _fail("an input whose token axis is unknown, or none with a token axis")
        return super().check(context, tokens)

    def rewrite(self, op, a, b, tokens, **_):
        a, b = (self._select(op, x, tokens) if _has_token_axis(x) else x for x in (a, b))
        return getattr(op, self.op_type)(a, b)


def _has_token_axis(x: ir.Value) -> bool | None:
    """True for (batch or 1, tokens, width), False for a value broadcast over the tokens, None when unknown."""
    if x.shape is None:
        return None
    if len(x.shape) <= 1 or (len(x.shape) == 3 and x.shape[TOKEN_AXIS] == 1):
        return False
    return True if len(x.shape) == 3 and isinstance(x.shape[TOKEN_AXIS], int) else None


class SelectionBeforeLinear(_SelectionMovesUp):
    """Through x @ W, W a matrix: each token's row is multiplied on its own."""

    def pattern(self, op, x, weight, tokens):
        return op.Gather(op.MatMul(x, weight), tokens, axis=TOKEN_AXIS)

    def check(self, context, x, weight, tokens, **_):
        if weight.shape is None or len(weight.shape) != 2 or not _is_tokens(x):
            return _fail("not (batch, tokens, width) times a matrix")
        return super().check(context, tokens)

    def rewrite(self, op, x, weight, tokens, **_):
        return op.MatMul(self._select(op, x, tokens), weight)


class SelectionBeforeLayerNorm(_SelectionMovesUp):
    """Through a LayerNorm over the width: it normalises each token on its own."""

    def pattern(self, op, x, weight, bias, tokens):
        return op.Gather(op.LayerNormalization(x, weight, bias, _outputs=["result"]), tokens, axis=TOKEN_AXIS)

    def check(self, context, x, tokens, result, **_):
        if result.producer().attributes.get_int("axis", -1) not in (-1, 2) or not _is_tokens(x):
            return _fail("not a LayerNorm over the width of (batch, tokens, width)")
        return super().check(context, tokens)

    def rewrite(self, op, x, weight, bias, tokens, result, **_):
        return op.LayerNormalization(self._select(op, x, tokens), weight, bias, **result.producer().attributes)


class SelectionBeforeAttention(_SelectionMovesUp):
    """Through attention on (batch, tokens, width): the selected tokens' queries attend to every key and value."""

    def pattern(self, op, query, key, value, tokens):
        return op.Gather(op.Attention(query, key, value, _outputs=["result"]), tokens, axis=TOKEN_AXIS)

    def check(self, context, query, tokens, result, **_):
        if "q_num_heads" not in result.producer().attributes or not _is_tokens(query):
            return _fail("attention on (batch, heads, tokens, head width)")
        return super().check(context, tokens)

    def rewrite(self, op, query, key, value, tokens, result, **_):
        return op.Attention(self._select(op, query, tokens), key, value, **result.producer().attributes)


_RULES = pattern.RewriteRuleSet(
    [
        AttentionOnTokens.rule(),
        SelectTokensOnce.rule(),
        SelectionBeforeLayerNorm.rule(),
        SelectionBeforeLinear.rule(),
        SelectionBeforeAttention.rule(),
        *(SelectionBeforeElementwise.rule(op_type) for op_type in ("Gelu", "Relu", "Erf", "Sigmoid", "Tanh")),
        *(SelectionBeforeBroadcast.rule(op_type) for op_type in ("Add", "Mul", "Sub", "Div")),
    ]
)
