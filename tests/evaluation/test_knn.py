"""k-NN over frozen features (DINO's weighted vote), in Python and through `vit-ft knn`."""

import json

import numpy as np
import pytest
import torch

from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.cli import main as cli_main
from vit_ft.data.arguments import DataArguments
from vit_ft.data.datasets import load_image_datasets
from vit_ft.data.transforms import build_eval_transform, decode_image
from vit_ft.evaluation.knn import knn_evaluate, knn_predict

from ..conftest import tiny_config


def _by_hand(train, train_labels, queries, num_classes, k, temperature):
    """DINO's knn_classifier written out, one query at a time, in float64 numpy."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    predictions = []
    for query in queries:
        similarity = train @ (query / np.linalg.norm(query))
        nearest = np.argsort(-similarity, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for row in nearest:
            votes[train_labels[row]] += np.exp(similarity[row] / temperature)
        predictions.append(int(np.argmax(votes)))
    return predictions


def test_knn_predict_equals_the_hand_computed_vote():
    generator = torch.Generator().manual_seed(0)
    train, queries = torch.randn(60, 8, generator=generator), torch.randn(25, 8, generator=generator)
    labels = torch.randint(0, 4, (60,), generator=generator)
    for k, temperature in ((1, 0.07), (5, 0.07), (20, 0.07), (20, 1.0)):
        ours = knn_predict(train, labels, queries, 4, k, temperature).tolist()
        assert ours == _by_hand(train.double().numpy(), labels.numpy(), queries.double().numpy(), 4, k, temperature)
    # A tiny temperature lets the nearest neighbour outvote the rest, without overflowing exp(s / T).
    nearest = knn_predict(train, labels, queries, 4, 1).tolist()
    assert knn_predict(train, labels, queries, 4, 20, 1e-4).tolist() == nearest


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    config = tiny_config(
        image_size=8, patch_size=2, num_labels=10, id2label={i: str(i) for i in range(10)}, initializer_range=0.5
    )
    folder = tmp_path_factory.mktemp("knn") / "model"
    ViTForImageClassification(config).save_pretrained(folder)
    default_processor(8).save_pretrained(folder)
    return folder


def _features_by_hand(model, dataset):
    transform = build_eval_transform(default_processor(8))
    pixels = torch.stack([transform(decode_image(image)) for image in dataset["image"]])
    with torch.no_grad():
        return model.vit(pixels).pooler_output.double().numpy(), np.array(dataset["label"])


@pytest.mark.parametrize("k, per_class", [(20, 5), (1, 1)])
def test_knn_on_digits_equals_the_hand_computed_one(tiny_model, tmp_path, k, per_class):
    data_args = DataArguments(dataset_name="digits", train_val_split=0.1, train_samples_per_class=per_class)
    results = knn_evaluate(str(tiny_model), data_args, "test", k=k, seed=3, output_file=str(tmp_path / "knn.json"))
    model = ViTForImageClassification.from_pretrained(tiny_model).eval()
    data, _ = load_image_datasets(data_args, 3)
    train, train_labels = _features_by_hand(model, data["train"])
    test, test_labels = _features_by_hand(model, data["test"])
    predicted = np.array(_by_hand(train, train_labels, test, 10, k, 0.07))
    if k == 1:  # with K = 1 and k = 1: the class of the one most cosine-similar training image
        normalised = train / np.linalg.norm(train, axis=1, keepdims=True)
        assert (predicted == train_labels[np.argmax(test @ normalised.T, axis=1)]).all()
    assert results["accuracy"] == pytest.approx((predicted == test_labels).mean(), abs=1e-6)
    assert results["train_images"] == 10 * per_class and results["examples"] == 360
    assert json.loads((tmp_path / "knn.json").read_text()) == results


def test_knn_refuses_bad_k_and_never_overwrites_without_overwrite(tiny_model, tmp_path, capsys):
    data = DataArguments(dataset_name="digits", train_val_split=0.1, train_samples_per_class=1)
    with pytest.raises(ValueError, match=r"^k=20 must be from 1 to the number of training images \(10\)\.$"):
        knn_evaluate(str(tiny_model), data, output_file=str(tmp_path / "a.json"))
    too_many = ["--train_samples_per_class", "500"]
    with pytest.raises(SystemExit, match=r"^vit-ft knn: train_samples_per_class=500 .* '0' has 1\d\d"):
        cli_main(["knn", "--model", str(tiny_model), "--dataset_name", "digits", *too_many])
    command = [
        "knn",
        "--model",
        str(tiny_model),
        "--dataset_name",
        "digits",
        "--train_samples_per_class",
        "2",
        "--k",
        "3",
        "--split",
        "validation",
    ]
    cli_main(command)
    written = tiny_model / "knn_validation.json"
    assert json.loads(capsys.readouterr().out) == json.loads(written.read_text())
    with pytest.raises(SystemExit, match="earlier vit-ft knn: pass --overwrite"):
        cli_main(command)
    cli_main([*command, "--overwrite"])
    with pytest.raises(SystemExit, match="not a result of vit-ft knn"):
        cli_main([*command, "--output", str(tiny_model / "config.json"), "--overwrite"])
