"""int8 keeps a trained model's accuracy: a digits model trained here, exported, and scored in PyTorch, ONNX float32
and ONNX int8 on the digits test set, on low-quality digits and on an image folder. docs/deployment.md reports the
numbers this prints."""

import pytest
import torch
from PIL import Image

from tests.test_train_run import RECIPE
from vit_ft.data.arguments import DataArguments
from vit_ft.data.datasets import load_image_datasets
from vit_ft.data.transforms import build_eval_transform, decode_image
from vit_ft.evaluation.evaluate import evaluate_model
from vit_ft.evaluation.predictor import load_predictor
from vit_ft.export.onnx_export import export_onnx
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

# A small digits model that trains in under a minute on two cores and scores about 94%.
OVERRIDES = '{"image_size": 16, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, '
TRAINING = [
    "--model_overrides",
    OVERRIDES + '"intermediate_size": 128}',
    "--num_train_epochs",
    "20",
    "--eval_strategy",
    "no",
    "--save_strategy",
    "no",
    "--disable_tqdm",
    "true",
    "--logging_steps",
    "50",
]
# Noise on 8x8 digits: the images the model scores then differ from its training images, and int8 rounding has
# less margin to spare.
LOW_QUALITY = dict(image_corruptions="gaussian_noise", corruption_severity=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model dir, export dir) of a digits model trained here."""
    model_dir = tmp_path_factory.mktemp("digits")
    run_training(read_recipe(RECIPE, [*TRAINING, "--output_dir", str(model_dir)]))
    return str(model_dir), str(export_onnx(str(model_dir), str(tmp_path_factory.mktemp("export")), quantize="int8"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """The digits test images as PNG files at 24x24, one folder per class."""
    folder = tmp_path_factory.mktemp("folder")
    data, names = load_image_datasets(DataArguments(dataset_name="digits"))
    for index, example in enumerate(data["test"]):
        image = decode_image(example["image"]).resize((24, 24), Image.BICUBIC)
        (folder / names[example["label"]]).mkdir(exist_ok=True)
        image.save(folder / names[example["label"]] / f"{index}.png")
    return str(folder)


@pytest.mark.slow
def test_float32_onnx_predicts_pytorchs_labels_on_the_whole_digits_test_set(trained):
    model_dir, export_dir = trained
    data, _ = load_image_datasets(DataArguments(dataset_name="digits"))
    pytorch, exported = load_predictor(model_dir), load_predictor(export_dir)
    transform = build_eval_transform(pytorch.preprocessing)
    pixel_values = torch.stack([transform(decode_image(value)) for value in data["test"]["image"]])  # (360, 3, 16, 16)
    pytorch_logits, onnx_logits = pytorch.logits(pixel_values), exported.logits(pixel_values)
    print(f"digits test: float32 ONNX logits at most {(onnx_logits - pytorch_logits).abs().max():.1e} from PyTorch's")
    assert torch.equal(onnx_logits.argmax(-1), pytorch_logits.argmax(-1))


@pytest.mark.slow
@pytest.mark.parametrize("test_set", ["digits", "low_quality_digits", "image_folder"])
def test_int8_loses_at_most_half_a_point_of_accuracy(trained, image_folder, test_set, tmp_path):
    model_dir, export_dir = trained
    data = {
        "digits": DataArguments(dataset_name="digits"),
        "low_quality_digits": DataArguments(dataset_name="digits", **LOW_QUALITY),
        "image_folder": DataArguments(test_dir=image_folder),
    }[test_set]
    accuracy = {
        name: evaluate_model(
            model_dir if name == "pytorch" else export_dir, data, output_file=str(tmp_path / name), onnx_file=file
        )["clean"]["accuracy"]
        for name, file in [("pytorch", None), ("float32", "model.onnx"), ("int8", "model_quantized.onnx")]
    }
    print(f"{test_set}: accuracy " + ", ".join(f"{name} {value:.2%}" for name, value in accuracy.items()))
    assert accuracy["pytorch"] > 0.6  # a trained model, whose accuracy int8 could lose
    assert accuracy["float32"] == accuracy["pytorch"]
    assert accuracy["float32"] - accuracy["int8"] <= 0.005
