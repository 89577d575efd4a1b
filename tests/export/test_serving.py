"""Serving an export: `load_predictor`, `vit-ft predict` and `vit-ft evaluate` give a model's answers from ONNX
Runtime, with the same preprocessing, and without vit_ft's model package or transformers' modeling code."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DeiTImageProcessor, ViTImageProcessor

from tests.conftest import import_blocker, tiny_config
from vit_ft import ViTForImageClassification, load_predictor
from vit_ft.checkpoints.loading import load_model, load_processor
from vit_ft.cli import main
from vit_ft.data.transforms import ProcessorSizes, build_eval_transform
from vit_ft.evaluation.predict import predict_images
from vit_ft.evaluation.predictor import TorchPredictor
from vit_ft.export.onnx_export import export_onnx
from vit_ft.export.runtime import OnnxClassifier

DIGITS = {i: str(i) for i in range(10)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    # initializer_range 0.5: the untrained model predicts many classes, so answers compare image by image.
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model")
    config = tiny_config(image_size=16, patch_size=4, num_labels=10, id2label=DIGITS, initializer_range=0.5)
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory) -> str:
    return str(export_onnx(model_dir, str(tmp_path_factory.mktemp("export"))))


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("images")
    generator = np.random.default_rng(0)
    paths = []
    for index, size in enumerate([(40, 30), (16, 16), (9, 23)]):
        paths.append(str(folder / f"image_{index}.png"))
        Image.fromarray(generator.integers(0, 256, (*size, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_load_predictor_serves_both_kinds(model_dir, export_dir):
    assert isinstance(load_predictor(model_dir), TorchPredictor)
    assert isinstance(load_predictor(export_dir), OnnxClassifier)
    with pytest.raises(ValueError, match="base_model is for LoRA adapters"):
        load_predictor(export_dir, base_model="x/y")


@pytest.mark.parametrize(
    "processor",
    [
        ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.6, 0.7]),
        DeiTImageProcessor(size={"height": 20, "width": 20}, crop_size={"height": 16, "width": 16}),
    ],
    ids=["resize", "resize_and_crop"],
)
def test_the_preprocessing_read_from_json_makes_the_same_pixels(processor, image_files, tmp_path):
    processor.save_pretrained(tmp_path)
    from_json = build_eval_transform(ProcessorSizes.from_json(tmp_path / "preprocessor_config.json"))
    from_processor = build_eval_transform(processor)
    for path in image_files:
        image = Image.open(path).convert("RGB")
        assert torch.equal(from_json(image), from_processor(image))


def test_the_export_sees_the_pixels_the_model_sees(model_dir, export_dir, image_files):
    model = load_model(model_dir)
    pytorch = build_eval_transform(load_processor(model, model_dir))
    exported = build_eval_transform(load_predictor(export_dir).preprocessing)
    for path in image_files:
        image = Image.open(path).convert("RGB")
        assert torch.equal(exported(image), pytorch(image))


def test_predict_gives_the_models_json_from_the_export(model_dir, export_dir, image_files):
    from_model = predict_images(model_dir, image_files, top_k=3)
    from_export = predict_images(export_dir, image_files, top_k=3)
    for model_result, export_result in zip(from_model, from_export, strict=True):
        assert export_result["image"] == model_result["image"]
        assert [p["label"] for p in export_result["predictions"]] == [p["label"] for p in model_result["predictions"]]
        export_scores = [p["score"] for p in export_result["predictions"]]
        np.testing.assert_allclose(export_scores, [p["score"] for p in model_result["predictions"]], atol=1e-4)


def test_evaluate_gives_the_models_json_from_the_export(model_dir, export_dir, tmp_path, capsys):
    data = ["--dataset_name", "digits", "--max_eval_samples", "64", "--corruptions", "jpeg", "--batch_size", "16"]
    main(["evaluate", "--model", model_dir, *data, "--output", str(tmp_path / "model.json")])
    main(["evaluate", "--model", export_dir, *data, "--output", str(tmp_path / "export.json")])
    from_model, from_export = (json.loads((tmp_path / name).read_text()) for name in ("model.json", "export.json"))
    assert from_export.pop("model") == export_dir and from_model.pop("model") == model_dir
    assert from_export.keys() == from_model.keys()
    for block in ("clean", "jpeg"):
        model_scores = from_model["clean"] if block == "clean" else from_model["corruptions"][block]
        export_scores = from_export["clean"] if block == "clean" else from_export["corruptions"][block]
        assert {key: value for key, value in export_scores.items() if key != "loss"} == {
            key: value for key, value in model_scores.items() if key != "loss"
        }
        assert export_scores["loss"] == pytest.approx(model_scores["loss"], abs=1e-5)
    capsys.readouterr()


def test_serving_an_export_needs_no_model_code(export_dir, image_files, tmp_path):
    # A fresh interpreter where importing vit_ft's model package fails: load_predictor, `vit-ft predict` and the
    # scores all come from the export, and transformers' modeling code is never imported.
    code = import_blocker("vit_ft.model") + textwrap.dedent(
        """
        import json

        import vit_ft
        from vit_ft.cli import main
        export_dir, *images = sys.argv[1:]
        predictor = vit_ft.load_predictor(export_dir)
        main(["predict", "--model", export_dir, "--top_k", "2", *images])
        loaded = [name for name in sys.modules if name.startswith(("vit_ft.model", "vit_ft.checkpoints", "peft"))
                  or name in ("transformers.modeling_utils", "transformers.pipelines")]
        print(json.dumps({"class": type(predictor).__name__, "loaded": loaded}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code, export_dir, *image_files], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    *predictions, report = result.stdout.strip().splitlines()
    assert json.loads(report) == {"class": "OnnxClassifier", "loaded": []}
    assert [json.loads(line)["image"] for line in predictions] == image_files
    assert predictions == [json.dumps(result) for result in predict_images(export_dir, image_files, top_k=2)]
