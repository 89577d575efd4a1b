"""Loading image datasets: built-in digits and LFW faces, image folders, column detection, labels and image modes."""

import io
import sys

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict
from datasets import Image as ImageFeature
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from vit_ft.data import MissingExtraError
from vit_ft.data.arguments import DataArguments
from vit_ft.data.datasets import _encode_labels, load_image_datasets
from vit_ft.data.readers import BUILT_IN_DATASETS, _built_in_hint, load_digits_dataset, load_lfw_faces_dataset
from vit_ft.data.transforms import decode_image, to_rgb
from vit_ft.hub.card import BUILT_IN_DATASETS as CARD_NAMES


def test_digits_split_is_sklearns():
    digits = load_digits()
    _, test_x, train_y, test_y = train_test_split(
        digits.images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    data = load_digits_dataset()
    assert (len(data["train"]), len(data["test"])) == (1437, 360)
    assert data["train"]["label"][:] == train_y.tolist() and data["test"]["label"][:] == test_y.tolist()
    first = np.asarray(data["test"][0]["image"], dtype=np.float64)
    np.testing.assert_allclose(first, np.round(test_x[0] * 255 / 16))


def test_validation_is_carved_from_train_stratified():
    data, names = load_image_datasets(DataArguments(dataset_name="digits", train_val_split=0.1), seed=3)
    assert names == [str(d) for d in range(10)]
    assert len(data["train"]) + len(data["validation"]) == 1437 and len(data["test"]) == 360
    counts = np.bincount(data["validation"]["label"][:], minlength=10)
    assert counts.min() >= 13 and counts.max() <= 15  # 144 images, about 14 per class
    assert data["test"].features["image"].decode is False  # decoded on the fly by the transforms
    for split in data.values():  # the ids that seed augmentations and noise: row numbers within each split
        assert split["example_id"][:] == list(range(len(split)))


def test_lfw_faces_are_scikit_images_split_stratified_and_labelled_by_position():
    from skimage.data import lfw_subset

    images = np.round(lfw_subset() * 255).astype(np.uint8)  # (200, 25, 25): 100 faces, then 100 non-faces
    row_of = {image.tobytes(): row for row, image in enumerate(images)}
    assert len(row_of) == 200  # no two images alike: each stored image names its row
    data = load_lfw_faces_dataset()
    assert (len(data["train"]), len(data["test"])) == (160, 40)
    assert data["train"].features["label"].names == ["face", "non-face"]
    rows = {}
    for split, dataset in data.items():
        rows[split] = [row_of[np.asarray(image).tobytes()] for image in dataset["image"]]
        assert dataset["label"][:] == [int(row >= 100) for row in rows[split]]
    assert sorted(rows["train"] + rows["test"]) == list(range(200))
    assert np.bincount(data["test"]["label"][:]).tolist() == [20, 20]  # stratified
    again = load_lfw_faces_dataset()  # random_state=0: the same split every time
    assert again["test"]["label"][:] == data["test"]["label"][:]
    assert [np.asarray(image).tobytes() for image in again["test"]["image"]] == [
        np.asarray(image).tobytes() for image in data["test"]["image"]
    ]


def test_lfw_faces_through_load_image_datasets():
    data, names = load_image_datasets(DataArguments(dataset_name="lfw_faces", train_val_split=0.1), seed=0)
    assert names == ["face", "non-face"]
    assert (len(data["train"]), len(data["validation"]), len(data["test"])) == (144, 16, 40)
    assert np.bincount(data["validation"]["label"][:]).tolist() == [8, 8]
    args = DataArguments(dataset_name="lfw_faces", train_val_split=0.1, train_samples_per_class=72)
    few, _ = load_image_datasets(args, seed=0)  # all of the pool left after the validation carve
    assert np.bincount(few["train"]["label"][:]).tolist() == [72, 72]


def test_lfw_faces_without_scikit_image_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # `import skimage` now raises ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(MissingExtraError) as error:
        load_image_datasets(DataArguments(dataset_name="lfw_faces"))
    assert str(error.value) == (
        "dataset_name='lfw_faces' needs scikit-image, which is not installed: pip install "
        "scikit-image (or pip install 'vit-ft[small-data]')."
    )


def test_built_in_names_are_suggested_and_named_on_the_card():
    assert _built_in_hint("lfw_face") == " Did you mean 'lfw_faces' (built in, offline)?"
    assert _built_in_hint("digit") == " Did you mean 'digits' (built in, offline)?"
    assert set(CARD_NAMES) == set(BUILT_IN_DATASETS)


def test_max_samples():
    data, _ = load_image_datasets(DataArguments(dataset_name="digits", max_train_samples=100, max_eval_samples=20))
    assert (len(data["train"]), len(data["validation"]), len(data["test"])) == (100, 20, 20)


def _write_folder(root, layout: dict[str, int], size=(12, 10)):
    for label, count in layout.items():
        (root / label).mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", size, (index * 20, 0, 0)).save(root / label / f"{index}.png")
    return root


def test_image_folders_give_label_names_and_splits(tmp_path):
    train = _write_folder(tmp_path / "train", {"cat": 4, "dog": 3})
    test = _write_folder(tmp_path / "test", {"cat": 2, "dog": 2})
    data, names = load_image_datasets(DataArguments(train_dir=str(train), test_dir=str(test), train_val_split=0))
    assert names == ["cat", "dog"]
    assert sorted(data) == ["test", "train"]
    assert sorted(data["train"]["label"][:]) == [0, 0, 0, 0, 1, 1, 1]
    assert decode_image(data["test"][0]["image"]).size == (12, 10)


def test_string_labels_get_one_map_across_splits():
    raw = DatasetDict(
        train=Dataset.from_dict({"image": [None] * 4, "label": ["cat", "dog", "cat", "ant"]}),
        test=Dataset.from_dict({"image": [None] * 2, "label": ["dog", "ant"]}),
    )
    data, names = _encode_labels(raw)
    assert names == ["ant", "cat", "dog"]
    assert data["train"]["label"][:] == [1, 2, 1, 0] and data["test"]["label"][:] == [2, 0]
    assert isinstance(data["test"].features["label"], ClassLabel)


def test_columns_are_detected_or_named(tmp_path, monkeypatch):
    images = [{"bytes": _png(Image.new("L", (4, 4))), "path": None}] * 4
    raw = DatasetDict(train=Dataset.from_dict({"img": images, "fine_label": [0, 1, 0, 1], "extra": [1, 2, 3, 4]}))
    raw = raw.cast_column("img", ImageFeature())
    monkeypatch.setattr("vit_ft.data.datasets._load_raw", lambda *args: raw)
    data, names = load_image_datasets(DataArguments(dataset_name="any", train_val_split=0))
    assert data["train"].column_names == ["image", "label", "example_id"] and names == ["0", "1"]
    with pytest.raises(ValueError, match=r"label_column_name='target' is not a column.*\['img', 'fine_label'"):
        load_image_datasets(DataArguments(dataset_name="any", label_column_name="target"))
    without_images = DatasetDict(train=raw["train"].remove_columns("img"))
    monkeypatch.setattr("vit_ft.data.datasets._load_raw", lambda *args: without_images)
    with pytest.raises(ValueError, match="Could not find the image column.*set image_column_name"):
        load_image_datasets(DataArguments(dataset_name="any"))


def _png(image: Image.Image, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_mode_becomes_rgb(mode):
    image = Image.new(mode, (5, 3))
    assert to_rgb(image).mode == "RGB" and to_rgb(image).size == (5, 3)


def test_sixteen_bit_images_are_rescaled_not_clipped():
    array = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(array)
    assert image.mode == "I;16"
    rgb = np.asarray(to_rgb(image))
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_transparency_composites_over_white():
    image = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 255))
    assert np.asarray(to_rgb(image))[0].tolist() == [[255, 255, 255], [255, 0, 0]]


def test_decode_reads_bytes_and_paths(tmp_path):
    Image.new("P", (3, 3)).save(tmp_path / "a.png")
    assert decode_image({"bytes": None, "path": str(tmp_path / "a.png")}).mode == "RGB"
    assert decode_image({"bytes": _png(Image.new("CMYK", (2, 2)), "JPEG"), "path": None}).size == (2, 2)


def test_dataset_name_goes_through_load_dataset(tmp_path):
    # The Hub path of `dataset_name`, with a repository laid out on disk as on the Hub (parquet per split).
    images = [{"bytes": _png(Image.new("RGB", (6, 6), (i * 30, 0, 0))), "path": None} for i in range(6)]
    features = {"img": ImageFeature(), "labels": ClassLabel(names=["bean_rust", "healthy"])}
    from datasets import Features

    for split, rows in (("train", range(4)), ("test", range(4, 6))):
        Dataset.from_dict(
            {"img": [images[i] for i in rows], "labels": [i % 2 for i in rows]}, features=Features(features)
        ).to_parquet(str(tmp_path / f"{split}.parquet"))
    data, names = load_image_datasets(DataArguments(dataset_name=str(tmp_path), train_val_split=0.5), seed=0)
    assert names == ["bean_rust", "healthy"]
    assert sorted(data) == ["test", "train", "validation"] and len(data["test"]) == 2
    assert sorted(data["train"]["label"][:] + data["validation"]["label"][:]) == [0, 0, 1, 1]


def test_folders_that_are_missing_empty_or_without_classes_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"train_dir='{tmp_path}/missing' is not a directory"):
        load_image_datasets(DataArguments(train_dir=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"test_dir='{tmp_path}/empty' holds no files: the test split"):
        load_image_datasets(DataArguments(test_dir=str(tmp_path / "empty")))
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match=r"label column among .*\['image'\].*one sub-folder per class"):
        load_image_datasets(DataArguments(train_dir=str(tmp_path / "flat")))
    # One class sub-folder: imagefolder would drop the labels; the message names the class it found.
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "one" / "cat" / "a.png")
    with pytest.raises(
        ValueError,
        match=f"^train_dir='{tmp_path}/one': one class only, 'cat'; a classifier needs at "
        "least two classes, one sub-folder of images per class.$",
    ):
        load_image_datasets(DataArguments(train_dir=str(tmp_path / "one")))


def test_an_empty_split_is_named(monkeypatch):
    digits = load_digits_dataset()
    monkeypatch.setattr(
        "vit_ft.data.datasets._load_raw",
        lambda *args: DatasetDict(train=digits["train"], test=digits["test"].select([])),
    )
    with pytest.raises(ValueError, match="The test split is empty in the data"):
        load_image_datasets(DataArguments(dataset_name="any"))


def test_sample_limits_below_one_are_refused_before_loading():
    with pytest.raises(ValueError, match="max_train_samples=0 must be at least 1"):
        DataArguments(dataset_name="digits", max_train_samples=0)
    with pytest.raises(ValueError, match="max_eval_samples=0 must be at least 1"):
        DataArguments(dataset_name="digits", max_eval_samples=0)


def test_labels_outside_the_label_map_or_the_training_classes_are_named(tmp_path, monkeypatch):
    train = _write_folder(tmp_path / "train", {"cat": 2, "dog": 2})
    test = _write_folder(tmp_path / "test", {"cat": 1, "dog": 1, "eel": 1})
    with pytest.raises(ValueError, match=r"The test split has class\(es\) \['eel'\] that the train split lacks"):
        load_image_datasets(DataArguments(train_dir=str(train), test_dir=str(test), train_val_split=0))
    images = [{"bytes": _png(Image.new("L", (4, 4))), "path": None}] * 3
    labels = ClassLabel(names=["a", "b"])
    raw = DatasetDict(
        train=Dataset.from_dict({"image": images[:2], "label": [0, 1]}).cast_column("label", labels),
        test=Dataset.from_dict({"image": images[2:], "label": [2]}),  # an id that the train split's map lacks
    )
    monkeypatch.setattr("vit_ft.data.datasets._load_raw", lambda *args: raw)
    with pytest.raises(ValueError, match=r"The test split has label\(s\) \[2\] outside the label map \(2 classes"):
        load_image_datasets(DataArguments(dataset_name="any", train_val_split=0))


def test_a_split_without_labels_is_left_out():
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from vit_ft.data.datasets import _drop_unlabelled

    features = Features({"image": Value("string"), "label": ClassLabel(names=["a", "b"])})
    data = DatasetDict(
        {
            "train": Dataset.from_dict({"image": ["x", "y"], "label": [0, 1]}, features=features),
            "validation": Dataset.from_dict({"image": ["z"], "label": [1]}, features=features),
            "test": Dataset.from_dict({"image": ["u", "v"], "label": [-1, -1]}, features=features),
        }
    )
    assert list(_drop_unlabelled(data)) == ["train", "validation"]
