"""`vit-ft export`: ONNX Runtime's logits against PyTorch's, the int8 file, the folder's layout and bad input."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tests.conftest import tiny_config
from vit_ft import ViTConfig, ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor, load_model
from vit_ft.cli import main
from vit_ft.export import MissingExtraError, import_extra
from vit_ft.export.onnx_export import PARITY_TOLERANCE, export_onnx
from vit_ft.export.runtime import OnnxClassifier
from vit_ft.training.arguments import LoraArguments
from vit_ft.training.lora import add_lora, write_adapter_record

CONFIGS = {
    "cls": {},
    "mean": dict(pooling="mean", class_token=False),
    "registers": dict(num_register_tokens=2),
    "distillation_head": dict(use_distillation_token=True),
    "sincos": dict(position_embedding_type="sincos"),
}


def _save(path: Path, config: ViTConfig, seed: int = 0) -> str:
    torch.manual_seed(seed)
    ViTForImageClassification(config).save_pretrained(path)
    default_processor(config.image_size).save_pretrained(path)
    return str(path)


def _pytorch_logits(model_dir: str, pixel_values: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_model(model_dir, merge=True).eval()(pixel_values).logits


def _assert_parity(model_dir: str, export_dir: Path) -> None:
    onnx_model = OnnxClassifier(export_dir)
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 7):  # one file, any batch
        pixel_values = torch.randn(batch, 3, 32, 32, generator=generator)
        torch.testing.assert_close(
            onnx_model.logits(pixel_values), _pytorch_logits(model_dir, pixel_values), rtol=0, atol=PARITY_TOLERANCE
        )


@pytest.mark.parametrize("name", CONFIGS)
def test_onnx_runtime_gives_pytorchs_logits(name, tmp_path):
    model_dir = _save(tmp_path / "model", tiny_config(**CONFIGS[name]))
    export_dir = export_onnx(model_dir, str(tmp_path / "export"))
    assert sorted(str(path.relative_to(export_dir)) for path in export_dir.rglob("*")) == [
        "config.json",
        "onnx",
        "onnx/model.onnx",
        "preprocessor_config.json",
    ]
    _assert_parity(model_dir, export_dir)


def test_a_lora_adapter_is_exported_merged_into_its_base(tmp_path):
    base_dir = _save(tmp_path / "base", tiny_config())
    model = load_model(base_dir)
    adapter = add_lora(model, LoraArguments(peft_method="lora"), base_dir)
    with torch.no_grad():  # B starts at zero: give the adapter an effect to export
        for name, parameter in adapter.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    adapter.save_pretrained(tmp_path / "adapter")
    write_adapter_record(str(tmp_path / "adapter"), model, {})
    default_processor(32).save_pretrained(tmp_path / "adapter")
    adapter_dir = str(tmp_path / "adapter")
    pixel_values = torch.randn(3, 3, 32, 32)
    assert not torch.allclose(_pytorch_logits(adapter_dir, pixel_values), _pytorch_logits(base_dir, pixel_values))
    _assert_parity(adapter_dir, export_onnx(adapter_dir, str(tmp_path / "export")))


def test_the_default_export_writes_each_blocks_attention_as_one_attention_node(tmp_path):
    # Opset 23's Attention runs the whole softmax(q k^T / sqrt(d)) v in one ONNX Runtime kernel (docs/deployment.md).
    model_dir = _save(tmp_path / "model", tiny_config())
    exported = onnx.load(str(export_onnx(model_dir, str(tmp_path / "export")) / "onnx" / "model.onnx"))
    assert exported.opset_import[0].version == 23
    operators = [node.op_type for node in exported.graph.node]
    assert operators.count("Attention") == tiny_config().num_hidden_layers and "Softmax" not in operators


def _linear_weights(path: Path) -> dict[str, list[int]]:
    """The element type of each MatMul/Gemm weight of the ONNX file at `path`, by the weight's name."""
    graph = onnx.load(str(path)).graph
    weights = {item.name: item.data_type for item in graph.initializer}
    return {
        name: weights[name]
        for node in graph.node
        if node.op_type in ("MatMul", "Gemm", "MatMulInteger")
        for name in node.input[1:2]
        if name in weights
    }


@pytest.mark.slow
def test_int8_quantizes_every_linear_layer_in_under_30_percent_of_the_size(tmp_path):
    # vit_tiny's 12 blocks of width 192 at a small image size: linear layers hold the weights, as in a real model.
    config = ViTConfig.from_preset("vit_tiny_patch16_224", image_size=32, num_labels=10)
    model_dir = _save(tmp_path / "model", config)
    export_dir = export_onnx(model_dir, str(tmp_path / "export"), quantize="int8")
    float_file, int8_file = export_dir / "onnx" / "model.onnx", export_dir / "onnx" / "model_quantized.onnx"
    linear_layers = 12 * 6 + 1  # q, k, v, o, fc1, fc2 per block, and the classifier
    assert len(_linear_weights(float_file)) == linear_layers
    assert set(_linear_weights(float_file).values()) == {onnx.TensorProto.FLOAT}
    quantized = _linear_weights(int8_file)
    assert len(quantized) == linear_layers and set(quantized.values()) == {onnx.TensorProto.INT8}
    ratio = int8_file.stat().st_size / float_file.stat().st_size
    print(f"int8 file: {ratio:.1%} of float32")  # docs/deployment.md reports it
    assert ratio <= 0.30
    pixel_values = torch.randn(4, 3, 32, 32)
    int8_logits = OnnxClassifier(export_dir, "model_quantized.onnx").logits(pixel_values)
    torch.testing.assert_close(int8_logits, _pytorch_logits(model_dir, pixel_values), rtol=0, atol=0.1)


def test_the_export_folder_holds_the_labels_and_preprocessing(tmp_path):
    config = tiny_config(num_labels=2, id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1})
    model_dir = _save(tmp_path / "model", config)
    main(["export", "--model", model_dir, "--output", str(tmp_path / "export"), "--opset", "20"])
    saved = json.loads((tmp_path / "export" / "config.json").read_text())
    assert saved["id2label"] == {"0": "cat", "1": "dog"} and saved["model_type"] == "vit_ft"
    processor = json.loads((tmp_path / "export" / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 32, "width": 32}
    assert onnx.load(str(tmp_path / "export" / "onnx" / "model.onnx")).opset_import[0].version == 20


# Bad input: one line that says what to do.


def _cli_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as error:
        main(list(argv))
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in capsys.readouterr().err
    return message


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return _save(tmp_path_factory.mktemp("model"), tiny_config())


def test_export_refuses_a_missing_folder_a_folder_without_a_model_and_an_opset_it_cannot_write(
    model_dir, tmp_path, capsys
):
    output = str(tmp_path / "export")
    message = _cli_error(capsys, "export", "--model", str(tmp_path / "missing"), "--output", output)
    assert message == (
        f"vit-ft export: --model {tmp_path / 'missing'} is not a directory: give a `vit-ft train` output directory."
    )
    (tmp_path / "empty").mkdir()
    message = _cli_error(capsys, "export", "--model", str(tmp_path / "empty"), "--output", output)
    assert message.startswith(f"vit-ft export: {tmp_path / 'empty'} holds neither config.json (a model) nor")
    message = _cli_error(capsys, "export", "--model", model_dir, "--output", output, "--opset", "13")
    assert message.startswith("vit-ft export: --opset 13: torch's exporter cannot write this model in opset 13")
    assert "choose an opset from 17 to 25" in message
    assert not (tmp_path / "export" / "onnx" / "model.onnx").exists()


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory) -> Path:
    return export_onnx(model_dir, str(tmp_path_factory.mktemp("export")), quantize="int8")


def _copy(export_dir: Path, to: Path) -> Path:
    for path in export_dir.rglob("*"):
        if path.is_file():
            (to / path.relative_to(export_dir)).parent.mkdir(parents=True, exist_ok=True)
            (to / path.relative_to(export_dir)).write_bytes(path.read_bytes())
    return to


def test_serving_refuses_a_damaged_file_and_an_input_size_the_preprocessor_does_not_make(
    export_dir, tmp_path, capsys, image_file
):
    damaged = _copy(export_dir, tmp_path / "damaged")
    data = (damaged / "onnx" / "model.onnx").read_bytes()
    (damaged / "onnx" / "model.onnx").write_bytes(data[: len(data) // 2])
    message = _cli_error(capsys, "predict", "--model", str(damaged), image_file)
    assert message.startswith(f"vit-ft predict: ONNX Runtime cannot load {damaged / 'onnx' / 'model.onnx'} (")
    assert message.endswith("the file is damaged or not an ONNX model; export it again with `vit-ft export`.")

    resized = _copy(export_dir, tmp_path / "resized")
    processor = json.loads((resized / "preprocessor_config.json").read_text())
    processor["size"] = {"height": 48, "width": 48}
    (resized / "preprocessor_config.json").write_text(json.dumps(processor))
    message = _cli_error(capsys, "evaluate", "--model", str(resized), "--dataset_name", "digits")
    assert message == (
        f"vit-ft evaluate: {resized / 'onnx' / 'model.onnx'} takes 32x32 images but its "
        "preprocessor_config.json makes 48x48: export the model and its preprocessor together with "
        "`vit-ft export`."
    )
    message = _cli_error(capsys, "predict", "--model", str(export_dir), "--onnx_file", "model_int4.onnx", image_file)
    onnx_folder = export_dir / "onnx"
    assert message.startswith(
        f"vit-ft predict: --onnx_file model_int4.onnx: {onnx_folder / 'model_int4.onnx'} does "
        f"not exist ({onnx_folder} holds model.onnx, model_quantized.onnx): "
    )


def test_a_missing_extra_says_how_to_install_it(monkeypatch, model_dir, tmp_path, capsys):
    import importlib

    real_import = importlib.import_module

    def without_onnxscript(name, *args):
        if name.startswith("onnxscript"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_onnxscript)
    with pytest.raises(MissingExtraError, match=r"onnxscript is not installed .*: pip install 'vit-ft\[export\]'"):
        import_extra("onnxscript")
    message = _cli_error(capsys, "export", "--model", model_dir, "--output", str(tmp_path / "export"))
    assert message == (
        "vit-ft export: onnxscript is not installed (ONNX export and serving need it): pip install 'vit-ft[export]'"
    )


@pytest.fixture
def image_file(tmp_path) -> str:
    path = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
    return str(path)
