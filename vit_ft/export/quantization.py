"""int8 weights for an exported model, with ONNX Runtime's dynamic quantization.

Dynamic, not static: the weights of every linear layer (q/k/v/o projections, MLP, classifier heads) are stored as
int8 with a scale per output channel, and each activation is quantized at run time from its own range. Static
quantization would fix activation ranges from calibration images, and a ViT's activations are where int8 hurts:
post-LayerNorm channels differ in range by orders of magnitude and the softmax is long-tailed (FQ-ViT, Lin et al.
2022; PTQ4ViT, Yuan et al. 2022). Dynamic quantization needs no calibration data either, so an export needs nothing
but the model. docs/deployment.md gives the measured sizes and accuracies.
"""

from pathlib import Path

from . import import_extra

# The linear layers. Attention's two MatMuls multiply activations by activations and stay float32: only a MatMul
# whose second input is a weight is quantized (MatMulConstBOnly). The patch embedding's Conv stays float32 too: it is
# 1-2% of the weights, and the first layer, where rounding errors would go through every block.
LINEAR_OPS = ["MatMul", "Gemm"]


def quantize_int8(float_file: str | Path, quantized_file: str | Path) -> Path:
    """Writes `float_file` (a float32 ONNX model) with int8 weights in every linear layer to `quantized_file`."""
    quantization = import_extra("onnxruntime.quantization")
    quantization.quantize_dynamic(
        str(float_file),
        str(quantized_file),
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=LINEAR_OPS,
        extra_options={"MatMulConstBOnly": True},
    )
    return Path(quantized_file)
