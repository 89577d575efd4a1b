"""train_samples_per_class: a stratified, seeded subset of K training images per class, after the validation carve."""

from collections import Counter

import pytest

from vit_ft.data.arguments import DataArguments
from vit_ft.data.datasets import (
    SOURCE_ROW,
    first_of_each_class,
    load_image_datasets,
    samples_per_class,
    train_subset_record,
)


def _load(k: int | None, seed: int = 0):
    return load_image_datasets(
        DataArguments(dataset_name="digits", train_val_split=0.1, train_samples_per_class=k), seed
    )


def test_k_images_of_each_class_the_same_for_a_seed_and_nested_across_k():
    data, names = _load(5)
    assert len(data["train"]) == 50 and Counter(data["train"]["label"]) == {c: 5 for c in range(10)}
    rows = data["train"][SOURCE_ROW]
    assert _load(5)[0]["train"][SOURCE_ROW] == rows  # the same images in every run with that seed
    assert _load(5, seed=1)[0]["train"][SOURCE_ROW] != rows
    assert set(_load(1)[0]["train"][SOURCE_ROW]) < set(rows) < set(_load(10)[0]["train"][SOURCE_ROW])
    assert data["train"]["example_id"] == list(range(50))


def test_the_subset_comes_from_the_pool_left_after_the_validation_carve():
    few, _ = _load(10)
    full, _ = _load(None)
    # The carve is the same with or without K, so validation is the same 144 images and shares none with train.
    assert few["validation"]["image"] == full["validation"]["image"]
    pool = [(image["bytes"], label) for image, label in zip(full["train"]["image"], full["train"]["label"])]
    picked = [(image["bytes"], label) for image, label in zip(few["train"]["image"], few["train"]["label"])]
    assert not Counter(picked) - Counter(pool)
    assert len(few["test"]) == 360  # the test split is untouched


def test_source_rows_name_the_images_of_the_datas_own_train_split():
    from vit_ft.data.readers import load_digits_dataset

    data, names = _load(3)
    raw = load_digits_dataset()["train"]
    for row, label in zip(data["train"][SOURCE_ROW], data["train"]["label"]):
        assert raw[row]["label"] == label
    record = train_subset_record(data["train"], 3, 0, names)
    assert record["images"] == 30 and record["seed"] == 0 and record["train_samples_per_class"] == 3
    assert sorted(row for rows in record["rows"].values() for row in rows) == sorted(data["train"][SOURCE_ROW])


def test_k_larger_than_a_class_holds_names_the_class_and_its_count():
    labels = [0] * 5 + [1] * 2 + [2] * 7
    with pytest.raises(ValueError) as error:
        samples_per_class(labels, 4, 0, ["cat", "dog", "eel"])
    message = str(error.value)
    assert "\n" not in message
    assert "train_samples_per_class=4" in message and "'dog' has 2" in message and "at most 2" in message
    assert "'cat'" not in message and "'eel'" not in message
    with pytest.raises(ValueError, match=r"train_samples_per_class=200 .* '\d' has 1\d\d"):
        _load(200)


def test_k_with_max_train_samples_and_a_bad_k_are_refused_in_one_line():
    with pytest.raises(ValueError, match="both choose the training images: set only one"):
        DataArguments(dataset_name="digits", train_samples_per_class=5, max_train_samples=100)
    with pytest.raises(ValueError, match="train_samples_per_class=0 must be at least 1"):
        DataArguments(dataset_name="digits", train_samples_per_class=0)


def test_first_of_each_class_takes_each_class_in_turn_then_their_second_images():
    labels = [2, 0, 0, 1, 2, 1, 0]
    assert first_of_each_class(labels, 3) == [1, 3, 0]  # the first 0, 1 and 2, by class
    assert first_of_each_class(labels, 5) == [1, 3, 0, 2, 5]  # then each class's second
    assert sorted(first_of_each_class(labels, 100)) == list(range(len(labels)))  # every row, each once
