"""Unlabelled images for pretraining: folders flat or nested, the built-in data sets without labels, caps and the
held-out share; a folder without a decodable image is one line."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vit_ft.pretraining.arguments import PretrainingDataArguments
from vit_ft.pretraining.data import load_unlabelled_images


def _write_images(folder: Path, names: list[str]) -> None:
    for index, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), index * 7 % 256, dtype=np.uint8)).save(path)


def test_digits_without_labels():
    data = load_unlabelled_images(PretrainingDataArguments(dataset_name="digits", validation_share=0.1), seed=0)
    assert set(data) == {"train", "validation"}
    assert len(data["train"]) + len(data["validation"]) == 1437  # the training split only: the test digits unseen
    assert len(data["validation"]) == 144
    assert data["train"].column_names == ["image", "example_id"]
    assert data["validation"]["example_id"] == list(range(144))


def test_lfw_faces_without_labels():
    data = load_unlabelled_images(PretrainingDataArguments(dataset_name="lfw_faces"), seed=0)
    assert (len(data["train"]), len(data["validation"])) == (152, 8)  # the 160 training images; 5% held out
    assert data["train"].column_names == ["image", "example_id"]


@pytest.mark.parametrize(
    "names",
    [[f"{i}.png" for i in range(10)], [f"cats/{i}.png" for i in range(5)] + [f"dogs/deep/{i}.jpg" for i in range(5)]],
)
def test_a_flat_or_nested_folder_with_its_folder_names_ignored(tmp_path, names):
    _write_images(tmp_path, names)
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_unlabelled_images(PretrainingDataArguments(train_dir=str(tmp_path), validation_share=0.2), seed=0)
    assert (len(data["train"]), len(data["validation"])) == (8, 2)
    paths = {Path(row["image"]["path"]).relative_to(tmp_path).as_posix() for split in data.values() for row in split}
    assert paths == set(names)
    assert data["train"].column_names == ["image", "example_id"]


def test_max_train_samples_and_at_least_one_held_out(tmp_path):
    _write_images(tmp_path, [f"{i}.png" for i in range(30)])
    args = PretrainingDataArguments(train_dir=str(tmp_path), validation_share=0.01, max_train_samples=12)
    data = load_unlabelled_images(args, seed=0)
    assert (len(data["train"]), len(data["validation"])) == (11, 1)


def test_a_folder_without_a_decodable_image_is_one_line(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(ValueError) as error:
        load_unlabelled_images(PretrainingDataArguments(train_dir=str(tmp_path)))
    assert str(error.value) == (
        f"train_dir={str(tmp_path)!r} holds no decodable image (1 files with image suffixes, "
        "none opens): put image files (PNG, JPEG, ...) in it or in its sub-folders."
    )


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "Set one of dataset_name"),
        ({"dataset_name": "digits", "train_dir": "x"}, "Set one of dataset_name"),
        ({"dataset_name": "digits", "validation_share": 0.0}, "validation_share=0.0 must be above 0 and below 1"),
        ({"dataset_name": "digits", "max_train_samples": 0}, "max_train_samples=0 must be at least 1"),
    ],
)
def test_the_data_arguments_check_themselves(fields, message):
    with pytest.raises(ValueError, match=message):
        PretrainingDataArguments(**fields)
