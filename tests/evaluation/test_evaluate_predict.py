"""`vit-ft evaluate` and `vit-ft predict`: metrics against a hand computation, corruptions, label checks, errors."""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import f1_score
from torchvision.transforms import v2
from transformers import AutoImageProcessor, ViTImageProcessor

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.cli import main
from vit_ft.data.arguments import CORRUPTIONS, DataArguments
from vit_ft.data.corruptions import corrupt, corrupted_transform, with_corruption
from vit_ft.data.datasets import load_image_datasets
from vit_ft.data.readers import load_digits_dataset
from vit_ft.data.seeding import example_seed
from vit_ft.data.transforms import ExampleTransform, build_eval_transform, decode_image
from vit_ft.evaluation.evaluate import evaluate_model
from vit_ft.evaluation.predict import predict_images
from vit_ft.evaluation.predictor import load_predictor
from vit_ft.hub.card import build_model_card

DIGITS = {i: str(i) for i in range(10)}
METRICS = {"accuracy", "top5_accuracy", "f1", "loss", "skipped_images"}


def _save_model(path, id2label: dict[int, str]) -> str:
    # initializer_range 0.5: an untrained tiny model then predicts 9 of the 10 digits, not one constant class, so
    # accuracy checks below compare real per-image predictions.
    torch.manual_seed(0)
    config = tiny_config(
        image_size=16, patch_size=4, num_labels=len(id2label), id2label=id2label, initializer_range=0.5
    )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return _save_model(tmp_path_factory.mktemp("digits_model"), DIGITS)


@pytest.fixture(scope="module")
def digits_test():
    data, names = load_image_datasets(DataArguments(dataset_name="digits"))
    assert names == list(DIGITS.values())
    return data["test"]


def _by_hand(model_dir: str, images: list[Image.Image], labels: list[int]) -> dict[str, float]:
    """The metrics computed without the Trainer: eval transform, one forward pass, numpy."""
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    transform = build_eval_transform(AutoImageProcessor.from_pretrained(model_dir))
    with torch.no_grad():
        logits = model(torch.stack([transform(image) for image in images])).logits  # (examples, 10)
    labels = torch.tensor(labels)
    predicted = logits.argmax(-1)
    return {
        "accuracy": (predicted == labels).sum().item() / len(labels),
        "top5_accuracy": (logits.topk(5).indices == labels[:, None]).any(-1).sum().item() / len(labels),
        "f1": f1_score(labels, predicted, average="macro"),
        "loss": torch.nn.functional.cross_entropy(logits, labels).item(),
        "distinct_predictions": predicted.unique().numel(),
    }


def _assert_metrics_match(measured: dict, expected: dict) -> None:
    assert set(measured) == METRICS  # no trainer prefix, no timings
    assert measured["skipped_images"] == 0
    assert measured["accuracy"] == expected["accuracy"]
    assert measured["top5_accuracy"] == expected["top5_accuracy"]
    assert measured["f1"] == pytest.approx(expected["f1"], abs=1e-12)
    assert measured["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def _digit_image(index: int = 0, size: int = 32) -> Image.Image:
    """A digits test image scaled up with sharp edges, so blur, JPEG and downscaling all have edges to destroy."""
    value = load_digits_dataset()["test"][index]["image"]
    return value.convert("RGB").resize((size, size), Image.NEAREST)


def _difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


# Corruptions


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_grow_with_severity(name):
    image = _digit_image()
    corrupted = [corrupt(image, name, severity, seed=0) for severity in (1, 2, 3, 4, 5)]
    assert all(output.size == image.size and output.mode == "RGB" for output in corrupted)
    changes = [_difference(output, image) for output in corrupted]  # mean absolute change in 0..255 pixel values
    assert changes[0] > 1.0
    assert changes == sorted(changes) and len(set(changes)) == 5
    assert changes[4] > 1.5 * changes[0]


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_on_tiny_images(name):
    # 8x8 digits at severity 5: the blur kernel and the downscaled size must shrink to fit.
    image = load_digits_dataset()["test"][0]["image"].convert("RGB")
    assert corrupt(image, name, 5).size == (8, 8)


def test_corruptions_are_reproducible_from_the_seed():
    image = _digit_image()
    noisy = np.asarray(corrupt(image, "gaussian_noise", 3, seed=7))
    np.testing.assert_array_equal(noisy, np.asarray(corrupt(image, "gaussian_noise", 3, seed=7)))
    generator = torch.Generator().manual_seed(7)
    np.testing.assert_array_equal(noisy, np.asarray(corrupt(image, "gaussian_noise", 3, generator)))
    other = np.asarray(corrupt(image, "gaussian_noise", 3, seed=8))
    assert (noisy != other).mean() > 0.5
    for name in ("gaussian_blur", "jpeg", "low_resolution"):  # not random: the seed changes nothing
        np.testing.assert_array_equal(np.asarray(corrupt(image, name, 3, seed=1)), np.asarray(corrupt(image, name, 3)))


@pytest.mark.parametrize("severity", [0, 6])
def test_severity_out_of_range(severity):
    with pytest.raises(ValueError, match=f"severity={severity} is out of range: use an integer from 1"):
        corrupt(_digit_image(), "jpeg", severity)


def test_unknown_corruption():
    with pytest.raises(ValueError, match="Unknown corruption 'fog': choose among gaussian_noise, gaussian_blur"):
        corrupt(_digit_image(), "fog", 3)


def test_corrupted_examples_do_not_depend_on_the_batch(digits_test):
    # What a dataloader worker sees: example i is seeded from (seed, i), whatever batch it arrives in.
    transform = build_eval_transform(ViTImageProcessor(size={"height": 16, "width": 16}))
    dataset = with_corruption(digits_test.select(range(12)), ExampleTransform(transform), "gaussian_noise", 4, seed=3)
    expected = transform(corrupt(decode_image(digits_test[5]["image"]), "gaussian_noise", 4, example_seed(3, 5)))
    torch.testing.assert_close(dataset[5]["pixel_values"], expected, rtol=0, atol=0)
    torch.testing.assert_close(dataset[0:12]["pixel_values"][5], expected, rtol=0, atol=0)
    torch.testing.assert_close(dataset[4:8]["pixel_values"][1], expected, rtol=0, atol=0)
    assert dataset[5]["labels"] == digits_test[5]["label"]
    assert example_seed(3, 5) != example_seed(5, 3)


def test_corruption_keeps_a_seeded_augmentation_per_example(digits_test):
    # The later low-quality-image recipe trains through a seeded ExampleTransform, which needs `example_id`.
    augment = v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop(16, scale=(0.3, 1.0)), v2.ToDtype(torch.float32)])
    dataset = with_corruption(digits_test.select(range(12)), ExampleTransform(augment, seed=1), "jpeg", 2)
    torch.testing.assert_close(dataset[0:12]["pixel_values"][5], dataset[5]["pixel_values"], rtol=0, atol=0)
    torch.testing.assert_close(dataset[3:9]["pixel_values"][2], dataset[5]["pixel_values"], rtol=0, atol=0)


def test_corruption_needs_the_example_ids_that_seed_the_noise(digits_test):
    transform = ExampleTransform(build_eval_transform(ViTImageProcessor(size={"height": 16, "width": 16})))
    with pytest.raises(ValueError, match=r"no example_id column \(its columns are \['image', 'label'\]\).*load_image"):
        with_corruption(digits_test.remove_columns("example_id"), transform, "jpeg", 2)
    # A corruption already around the transform needs them too, with or without the data's own.
    with pytest.raises(ValueError, match=r"no example_id column"):
        with_corruption(digits_test.remove_columns("example_id"), corrupted_transform(transform, "jpeg", 2), None, 3)


def test_data_corruptions_come_first_and_a_corruption_on_top_draws_other_noise(digits_test):
    # `vit-ft evaluate --image_corruptions gaussian_noise --corruptions gaussian_noise`: both noises at seed 0.
    transform = build_eval_transform(ViTImageProcessor(size={"height": 16, "width": 16}))
    data_args = DataArguments(
        dataset_name="digits", image_corruptions="low_resolution,gaussian_noise", corruption_severity=2
    )
    on_top = corrupted_transform(ExampleTransform(transform), "gaussian_noise", 4, seed=0, stream=1)
    dataset = with_corruption(digits_test.select(range(8)), on_top, *data_args.corruption)
    generator = torch.Generator().manual_seed(example_seed(0, 5))
    image = decode_image(digits_test[5]["image"])
    low_quality = corrupt(corrupt(image, "low_resolution", 2, generator), "gaussian_noise", 2, generator)
    expected = transform(corrupt(low_quality, "gaussian_noise", 4, example_seed(0, 5, stream=1)))
    torch.testing.assert_close(dataset[5]["pixel_values"], expected, rtol=0, atol=0)
    assert example_seed(0, 5, stream=1) != example_seed(0, 5)


def test_no_corruption_leaves_the_transform_as_it_is(digits_test):
    transform = ExampleTransform(build_eval_transform(ViTImageProcessor(size={"height": 16, "width": 16})))
    assert corrupted_transform(transform, None, 3) is transform
    assert corrupted_transform(transform, " , ", 3) is transform
    # Without a corruption nothing is seeded per example, so the example_id column is not needed.
    plain = with_corruption(digits_test.remove_columns("example_id").select(range(4)), transform, [], 3)
    expected = transform({"image": [digits_test[2]["image"]]})["pixel_values"][0]
    torch.testing.assert_close(plain[2]["pixel_values"], expected, rtol=0, atol=0)


def test_corruptions_given_as_text_or_as_a_list_are_the_same(digits_test):
    transform = ExampleTransform(build_eval_transform(ViTImageProcessor(size={"height": 16, "width": 16})))
    as_text = with_corruption(digits_test.select(range(4)), transform, "jpeg, gaussian_noise", 2, seed=1)
    as_list = with_corruption(digits_test.select(range(4)), transform, ["jpeg", "gaussian_noise"], 2, seed=1)
    torch.testing.assert_close(as_text[0:4]["pixel_values"], as_list[0:4]["pixel_values"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="Unknown corruption 'fog'"):
        corrupted_transform(transform, "jpeg,fog", 2)


# evaluate


def test_evaluate_matches_a_hand_computation(model_dir, digits_test, tmp_path):
    output = tmp_path / "eval.json"
    results = evaluate_model(model_dir, DataArguments(dataset_name="digits"), output_file=str(output))
    assert results["split"] == "test" and results["examples"] == 360 and "corruptions" not in results
    expected = _by_hand(model_dir, [decode_image(v) for v in digits_test["image"]], digits_test["label"])
    assert expected["distinct_predictions"] >= 5
    _assert_metrics_match(results["clean"], expected)
    assert json.loads(output.read_text()) == results


def test_evaluate_with_corruptions(model_dir, digits_test):
    results = evaluate_model(
        model_dir,
        DataArguments(dataset_name="digits", max_eval_samples=48),
        corruptions=list(CORRUPTIONS),
        severity=5,
        seed=11,
        batch_size=16,
    )
    assert results["examples"] == 48 and results["severity"] == 5 and results["seed"] == 11
    assert list(results["corruptions"]) == list(CORRUPTIONS)
    subset = digits_test.select(range(48))
    clean = [decode_image(value) for value in subset["image"]]
    _assert_metrics_match(results["clean"], _by_hand(model_dir, clean, subset["label"]))
    for name in CORRUPTIONS:
        corrupted = [corrupt(image, name, 5, example_seed(11, i)) for i, image in enumerate(clean)]
        _assert_metrics_match(results["corruptions"][name], _by_hand(model_dir, corrupted, subset["label"]))
        assert results["corruptions"][name]["loss"] != results["clean"]["loss"]
    # Written next to the model by default.
    assert json.loads((Path(model_dir) / "robustness_test.json").read_text()) == results


def test_evaluate_counts_the_images_it_scored_and_those_it_skipped(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "test" / label).mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (12, 12), (50 * index, 200 if label == "a" else 0, 90)).save(
                tmp_path / "test" / label / f"{index}.png"
            )
    (tmp_path / "test" / "a" / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "test" / "b" / "empty.png").write_bytes(b"")
    model_dir = _save_model(tmp_path / "model", {0: "a", 1: "b"})
    data_args = DataArguments(test_dir=str(tmp_path / "test"), train_val_split=0)
    results = evaluate_model(model_dir, data_args, batch_size=5, output_file=str(tmp_path / "eval.json"))
    assert (results["examples"], results["skipped_images"], results["clean"]["skipped_images"]) == (10, 2, 2)
    # By hand, batch by batch as the Trainer averages: each batch's mean loss once per image the batch read.
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    transform = build_eval_transform(AutoImageProcessor.from_pretrained(model_dir))
    rows = load_image_datasets(data_args)[0]["test"]
    batch_losses, batch_sizes = [], []
    for start in range(0, len(rows), 5):
        batch = rows[start : start + 5]
        kept = [
            (value, label)
            for value, label in zip(batch["image"], batch["label"])
            if Path(value["path"]).name not in ("broken.png", "empty.png")
        ]
        pixel_values = torch.stack([transform(decode_image(value)) for value, _ in kept])
        with torch.no_grad():
            logits = model(pixel_values).logits  # (kept, 2)
        batch_losses.append(torch.nn.functional.cross_entropy(logits, torch.tensor([y for _, y in kept])).item())
        batch_sizes.append(len(batch["label"]))
    assert batch_sizes == [5, 5, 2]
    assert results["clean"]["loss"] == pytest.approx(np.average(batch_losses, weights=batch_sizes), rel=1e-6)


def test_evaluate_at_several_severities_keys_scores_by_severity_and_plots_them(model_dir, tmp_path):
    data = DataArguments(dataset_name="digits", max_eval_samples=24)
    # The model alone: other tests' results in model_dir are not to be replaced.
    folder = Path(shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("robustness_*")))
    results = evaluate_model(str(folder), data, corruptions=["gaussian_blur", "jpeg"], severity=[1, 3, 5], seed=2)
    assert results["severities"] == [1, 3, 5] and "severity" not in results
    assert list(results["corruptions"]) == ["gaussian_blur", "jpeg"]
    for level in (1, 3, 5):
        alone = evaluate_model(
            str(folder),
            data,
            corruptions=["gaussian_blur", "jpeg"],
            severity=level,
            seed=2,
            output_file=str(tmp_path / f"severity_{level}.json"),
        )
        assert alone["severity"] == level and alone["clean"] == results["clean"]
        for name in ("gaussian_blur", "jpeg"):
            assert results["corruptions"][name][str(level)] == alone["corruptions"][name]
    blur = [results["corruptions"]["gaussian_blur"][level]["accuracy"] for level in ("1", "3", "5")]
    assert len(set(blur)) > 1  # the curve has a shape to draw
    assert json.loads((folder / "robustness_test.json").read_text()) == results
    with Image.open(folder / "robustness_test.png") as picture:
        assert picture.size == (600, 400)
    assert not (tmp_path / "severity_3.png").exists()  # one severity: the JSON alone, as before

    # The card: a table of accuracy per severity, and the picture.
    card = build_model_card(folder, "tester/digits").text
    accuracy = results["clean"]["accuracy"]
    assert "| corruption | clean | severity 1 | severity 3 | severity 5 |" in card
    assert f"| gaussian_blur | {accuracy:.4f} | {blur[0]:.4f} | {blur[1]:.4f} | {blur[2]:.4f} |" in card
    assert "![accuracy against corruption severity](robustness_test.png)" in card


def test_evaluation_does_not_import_training(tmp_path):
    # The package layering: evaluation sits beside training, not on top of it.
    code = "import sys, vit_ft.evaluation.evaluate; print([m for m in sys.modules if m.startswith('vit_ft.training')])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_evaluate_refuses_a_model_with_other_labels(tmp_path):
    model_dir = _save_model(tmp_path / "letters", {0: "0", 1: "1", 2: "two", 3: "3", 4: "4", 5: "5", 6: "6"})
    with pytest.raises(ValueError) as error:
        evaluate_model(model_dir, DataArguments(dataset_name="digits", max_eval_samples=8))
    message = str(error.value)
    assert f"The labels of model {model_dir} (7 classes) differ from the dataset's (10)" in message
    assert "class 2 is 'two' for the model, '2' in the data" in message
    assert "class 9 is '(none)' for the model, '9' in the data" in message
    assert "class 1 " not in message  # labels that agree are not listed


def test_evaluate_matches_a_repeated_name_the_data_made_unique_by_position(tmp_path, caplog):
    # An ImageNet checkpoint on ImageNet data in small: the model repeats `crane`, the folders call the second
    # `crane2`, as a dataset must.
    model_dir = _save_model(tmp_path / "model", dict(enumerate(["bird", "crane", "crane", "dog"])))
    for index, label in enumerate(["bird", "crane", "crane2", "dog"]):
        (tmp_path / "test" / label).mkdir(parents=True)
        Image.new("RGB", (16, 16), (60 * index, 0, 0)).save(tmp_path / "test" / label / "0.png")
    data = ["--test_dir", str(tmp_path / "test")]
    with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoints.labels"):
        main(["evaluate", "--model", model_dir, *data, "--output", str(tmp_path / "auto.json")])
    assert json.loads((tmp_path / "auto.json").read_text())["examples"] == 4
    assert (
        f"The labels of model {model_dir} are matched to the dataset's by position (--label_matching=auto): 1 of 4 "
        "names differ, each a name the model repeats that the dataset made unique (class 2: 'crane' for the model, "
        "'crane2' in the data)." in caplog.messages
    )
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--model", model_dir, *data, "--label_matching", "name"])
    assert "class 2 is 'crane' for the model, 'crane2' in the data" in str(stop.value)
    assert str(stop.value).endswith("If they are the same classes under other names, set --label_matching=index.")
    with pytest.raises(SystemExit, match=r"^vit-ft evaluate: --label_matching='exact': choose auto"):
        main(["evaluate", "--model", model_dir, *data, "--label_matching", "exact"])


def test_evaluate_argument_errors(model_dir, tmp_path):
    data = DataArguments(dataset_name="digits")
    with pytest.raises(FileNotFoundError, match=f"model='{tmp_path}/missing' is not a directory"):
        evaluate_model(str(tmp_path / "missing"), data)
    with pytest.raises(ValueError, match="severity=6 is out of range"):
        evaluate_model(model_dir, data, corruptions=["jpeg"], severity=6)
    with pytest.raises(ValueError, match="Unknown corruption 'snow'"):
        evaluate_model(model_dir, data, corruptions=["jpeg", "snow"])
    with pytest.raises(ValueError, match="split='validation' is not in the data, which has train, test: choose"):
        evaluate_model(model_dir, DataArguments(dataset_name="digits", train_val_split=0), split="validation")


def test_evaluate_replaces_its_own_results_only_when_told_and_never_another_file(model_dir, tmp_path):
    folder = Path(shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("robustness_*")))
    data = DataArguments(dataset_name="digits", max_eval_samples=8)
    first = evaluate_model(str(folder), data)
    assert first["model_file"] == "model.safetensors"
    written = (folder / "eval_test.json").read_bytes()
    with pytest.raises(FileExistsError) as error:
        evaluate_model(str(folder), DataArguments(dataset_name="digits", max_eval_samples=4))
    assert str(error.value) == (
        f"{folder}/eval_test.json holds the results of an earlier vit-ft evaluate: pass "
        "--overwrite to replace them, or --output to write elsewhere."
    )
    assert (folder / "eval_test.json").read_bytes() == written
    again = evaluate_model(str(folder), DataArguments(dataset_name="digits", max_eval_samples=4), overwrite=True)
    assert again["examples"] == 4 and json.loads((folder / "eval_test.json").read_text()) == again

    # A model's config.json, a JSON of other fields, a file that is not JSON: never replaced, --overwrite or not.
    (tmp_path / "notes.json").write_text('{"model": "mine"}')
    (tmp_path / "notes.txt").write_text("my notes")
    for other in (folder / "config.json", tmp_path / "notes.json", tmp_path / "notes.txt"):
        before = other.read_bytes()
        for overwrite in (False, True):
            with pytest.raises(FileExistsError) as error:
                evaluate_model(str(folder), data, output_file=str(other), overwrite=overwrite)
            assert str(error.value) == (
                f"{other} exists and is not a result of vit-ft evaluate (it lacks model, "
                "split, examples, clean): it is never overwritten. Choose another "
                "--output."
            )
        assert other.read_bytes() == before
    ViTForImageClassification.from_pretrained(folder)  # still loads


def test_a_robustness_curve_is_replaced_only_when_told(model_dir, tmp_path):
    folder = Path(shutil.copytree(model_dir, tmp_path / "model", ignore=shutil.ignore_patterns("robustness_*")))
    data = DataArguments(dataset_name="digits", max_eval_samples=8)
    evaluate_model(str(folder), data, corruptions=["jpeg", "gaussian_blur"], severity=[1, 5])
    json_bytes = (folder / "robustness_test.json").read_bytes()
    plot_bytes = (folder / "robustness_test.png").read_bytes()
    with pytest.raises(FileExistsError, match="robustness_test.json holds the results of an earlier vit-ft evaluate"):
        evaluate_model(str(folder), data, corruptions=["jpeg"])  # one severity: the JSON alone
    assert (folder / "robustness_test.json").read_bytes() == json_bytes
    assert (folder / "robustness_test.png").read_bytes() == plot_bytes
    # A plot whose JSON beside it is not a result is another's picture.
    (tmp_path / "curves.png").write_bytes(plot_bytes)
    with pytest.raises(FileExistsError, match="curves.png exists beside no vit-ft evaluate result"):
        evaluate_model(
            str(folder),
            data,
            corruptions=["jpeg"],
            severity=[1, 2],
            output_file=str(tmp_path / "curves.json"),
            overwrite=True,
        )
    replaced = evaluate_model(str(folder), data, corruptions=["jpeg"], severity=[2, 3], overwrite=True)
    assert json.loads((folder / "robustness_test.json").read_text()) == replaced
    assert (folder / "robustness_test.png").read_bytes() != plot_bytes


@pytest.mark.slow
def test_an_exports_int8_and_float32_results_go_to_their_own_files(model_dir, tmp_path):
    from vit_ft.export.onnx_export import export_onnx

    export = export_onnx(model_dir, str(tmp_path / "export"), quantize="int8")
    data = DataArguments(dataset_name="digits", max_eval_samples=16)
    float32 = evaluate_model(str(export), data)
    int8 = evaluate_model(str(export), data, onnx_file="model_quantized.onnx")
    assert (float32["model_file"], int8["model_file"]) == ("onnx/model.onnx", "onnx/model_quantized.onnx")
    assert json.loads((export / "eval_test.json").read_text()) == float32
    assert json.loads((export / "eval_test_model_quantized.json").read_text()) == int8
    robust = evaluate_model(str(export), data, corruptions=["jpeg"], severity=[1, 2], onnx_file="model_quantized.onnx")
    assert json.loads((export / "robustness_test_model_quantized.json").read_text()) == robust
    assert (export / "robustness_test_model_quantized.png").is_file()
    assert "Split `test` (16 images), scored with `onnx/model_quantized.onnx`" in build_model_card(export, "t/d").text
    _assert_refuses_unreadable_pixels(load_predictor(str(export)))


def _assert_refuses_unreadable_pixels(predictor) -> None:
    """Integer pixels, an empty batch and 1x1 images are one-line ValueErrors for the model's 16x16 input."""
    with pytest.raises(ValueError) as error:
        predictor.logits(torch.randint(0, 255, (2, 3, 16, 16), dtype=torch.uint8))
    assert str(error.value) == (
        "pixel_values are torch.uint8, not floating point: pass the images through the "
        "model's image processor (or build_eval_transform), which scales and normalises "
        "them."
    )
    for shape in ((0, 3, 16, 16), (2, 3, 1, 1)):
        with pytest.raises(ValueError) as error:
            predictor.logits(torch.zeros(shape))
        assert str(error.value) == (
            f"pixel_values of shape {shape}: expected (batch, 3, 16, 16) with at least one "
            "image; resize the images with the model's image processor (or "
            "build_eval_transform)."
        )
    assert predictor.logits(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_the_pytorch_predictor_refuses_pixels_its_model_cannot_read(model_dir):
    _assert_refuses_unreadable_pixels(load_predictor(model_dir))


# predict


@pytest.fixture
def image_files(tmp_path) -> list[str]:
    paths = []
    for index in range(3):
        path = tmp_path / f"digit_{index}.png"
        _digit_image(index, size=24).save(path)
        paths.append(str(path))
    return paths


def test_predict_ranks_the_models_classes(model_dir, image_files):
    results = predict_images(model_dir, image_files, top_k=3)
    assert [result["image"] for result in results] == image_files
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    transform = build_eval_transform(AutoImageProcessor.from_pretrained(model_dir))  # as `vit-ft evaluate` does
    for path, result in zip(image_files, results):
        pixel_values = transform(Image.open(path).convert("RGB"))[None]
        with torch.no_grad():
            logits = model(pixel_values).logits[0]  # (10,)
        predictions = result["predictions"]
        scores = [prediction["score"] for prediction in predictions]
        assert len(predictions) == 3 and scores == sorted(scores, reverse=True) and sum(scores) <= 1
        assert {prediction["label"] for prediction in predictions} <= set(DIGITS.values())
        assert predictions[0]["label"] == DIGITS[logits.argmax().item()]
        np.testing.assert_allclose(scores, logits.softmax(-1).topk(3).values.numpy(), rtol=1e-5)


def test_predict_names_a_missing_or_broken_file(model_dir, image_files, tmp_path):
    missing = str(tmp_path / "missing.png")
    with pytest.raises(OSError, match=f"Cannot read image {missing}"):
        predict_images(model_dir, [image_files[0], missing])
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(OSError, match=f"Cannot read image {broken}"):
        predict_images(model_dir, [str(broken)])


# CLI


def test_cli_evaluate_prints_the_json_it_writes(model_dir, tmp_path, capsys):
    output = tmp_path / "robustness.json"
    data = ["--dataset_name", "digits", "--max_eval_samples", "16"]
    corruptions = ["--corruptions", "jpeg,low_resolution", "--severity", "2"]
    main(["evaluate", "--model", model_dir, *data, *corruptions, "--batch_size", "8", "--output", str(output)])
    printed = json.loads(capsys.readouterr().out)  # stdout holds the JSON and nothing else
    assert printed == json.loads(output.read_text())
    assert printed["examples"] == 16 and printed["severity"] == 2
    assert list(printed["corruptions"]) == ["jpeg", "low_resolution"]
    assert not output.with_suffix(".png").exists()
    main(
        [
            "evaluate",
            "--model",
            model_dir,
            *data,
            "--corruptions",
            "jpeg",
            "--severity",
            "1,4",
            "--output",
            str(output),
            "--overwrite",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["severities"] == [1, 4] and list(printed["corruptions"]["jpeg"]) == ["1", "4"]
    assert output.with_suffix(".png").is_file()


def test_cli_evaluate_errors(model_dir, capsys):
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "--model", model_dir, "--dataset_name", "digits", "--corruptions", "fog"])
    assert str(error.value).startswith("vit-ft evaluate: Unknown corruption 'fog'")
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "--model", model_dir, "--dataset_name", "digits", "--severity", "0"])
    assert error.value.code == 2 and "argument --severity: invalid choice: 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        main(["evaluate", "--model", model_dir, "--dataset_name", "digits", "--severity", "1,6"])
    assert error.value.code == 2 and "argument --severity: invalid choice: 6" in capsys.readouterr().err


def test_cli_predict_prints_one_line_per_image(model_dir, image_files, capsys):
    main(["predict", "--model", model_dir, *image_files[:2], "--top_k", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line)["image"] for line in lines] == image_files[:2]
    assert all(len(json.loads(line)["predictions"]) == 2 for line in lines)
    with pytest.raises(SystemExit, match="vit-ft predict: Cannot read image nowhere.jpg"):
        main(["predict", "--model", model_dir, "nowhere.jpg"])
