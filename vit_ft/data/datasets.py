"""Image classification datasets for `vit-ft train`/`evaluate`: the Hub, image folders or a built-in data set
(`BUILT_IN_DATASETS`: digits, LFW faces)."""

import difflib
import logging
import os
from pathlib import Path

import httpx2
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_dataset
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError

from . import MissingExtraError
from .arguments import DataArguments

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "img", "images", "pixel_values", "picture", "jpg", "png", "webp")
LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target", "category", "coarse_label")
VALIDATION_SPLITS = ("validation", "valid", "val", "eval", "dev")
# With train_samples_per_class, the train split's row number in the data's own train split (before the validation
# split is carved): how train_subset.json names the images a few-shot run trained on.
SOURCE_ROW = "source_row"
# How long the one lookup of a Hub dataset may wait: datasets alone retries an unreachable Hub for about 30 s.
HUB_TIMEOUT = 5.0


def load_digits_dataset() -> DatasetDict:
    """
    scikit-learn's 1,797 8x8 digits as a `DatasetDict` with `train` (1,437) and `test` (360), split exactly as
    `train_test_split(images, target, test_size=0.2, random_state=0, stratify=target)`. Pixels 0..16 become 8-bit
    grayscale images (value * 255 / 16), stored as PNG like any image dataset.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # (1797, 8, 8)
    return _split_built_in(images, digits.target, [str(d) for d in range(10)])


def load_lfw_faces_dataset() -> DatasetDict:
    """
    scikit-image's `lfw_subset` (200 grey 25x25 crops of Labeled Faces in the Wild, shipped inside its wheel: 100
    faces, then 100 patches of the same photos' backgrounds) as a `DatasetDict` with `train` (160) and `test` (40),
    labels `face` and `non-face`, split as `load_digits_dataset`: 20% stratified, `random_state=0`. Its grey values
    0..1 become 8-bit images (value * 255). Needs scikit-image: a one-line MissingExtraError without it.
    """
    try:
        from skimage.data import lfw_subset
    except ImportError as error:
        raise MissingExtraError(
            "dataset_name='lfw_faces' needs scikit-image, which is not installed: pip install "
            "scikit-image (or pip install 'vit-ft[small-data]')."
        ) from error
    images = np.round(lfw_subset() * 255).astype(np.uint8)  # (200, 25, 25); the docstring says uint8, it is 0..1
    # lfw_subset's docstring: "100 first images are faces and subsequent 100 are non-faces".
    labels = np.repeat([0, 1], 100)
    return _split_built_in(images, labels, ["face", "non-face"])


def _split_built_in(images: np.ndarray, labels: np.ndarray, names: list[str]) -> DatasetDict:
    """`train` and `test` of grey `images` (N, H, W) uint8: 20% stratified test, `random_state=0`, stored as PNG."""
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=0.2, random_state=0, stratify=labels)
    features = Features({"image": Image(), "label": ClassLabel(names=names)})

    def build(x, y) -> Dataset:
        return Dataset.from_dict({"image": list(x), "label": y.tolist()}, features=features)

    return DatasetDict(train=build(train_x, train_y), test=build(test_x, test_y))


# The data sets that `dataset_name` names without the Hub: each ships inside an installed package's wheel, nothing is
# downloaded.
BUILT_IN_DATASETS = {"digits": load_digits_dataset, "lfw_faces": load_lfw_faces_dataset}


def _load_raw(args: DataArguments, cache_dir: str | None = None, token: str | None = None) -> DatasetDict:
    if args.dataset_name in BUILT_IN_DATASETS:
        return BUILT_IN_DATASETS[args.dataset_name]()
    if args.dataset_name:
        return _load_named_dataset(args.dataset_name, args.dataset_config_name, cache_dir, token)
    folders = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    folders = {split: folder for split, folder in folders.items() if folder}
    if not folders:
        raise ValueError(
            "No data: set dataset_name (a Hub id, `digits` or `lfw_faces`) or train_dir/validation_dir/test_dir."
        )
    for split, folder in folders.items():
        if not Path(folder).is_dir():
            raise FileNotFoundError(
                f"{split}_dir={folder!r} is not a directory: give the folder that holds one "
                "sub-folder of images per class."
            )
        if not any(path.is_file() for path in Path(folder).rglob("*")):
            raise ValueError(
                f"{split}_dir={folder!r} holds no files: the {split} split would be empty. Put one "
                "sub-folder of images per class in it, or unset it."
            )
    _check_two_classes(folders)
    return load_dataset(
        "imagefolder", data_files={split: f"{folder}/**" for split, folder in folders.items()}, cache_dir=cache_dir
    )


def _load_named_dataset(name: str, config_name: str | None, cache_dir: str | None, token: str | None) -> DatasetDict:
    """
    A Hub dataset (or a local dataset folder or script, which `load_dataset` also takes). The Hub is asked once, with
    a short timeout, before `load_dataset`: a mistyped name or an unreachable Hub is then one line at once, with the
    built-in name it may have meant, rather than datasets' retries.
    """
    hint = _built_in_hint(name)
    if not os.path.exists(name) and not constants.is_offline_mode():
        _check_hub_dataset(name, token, hint)
    try:
        return load_dataset(name, config_name, cache_dir=cache_dir, token=token)
    except (DatasetNotFoundError, ConnectionError) as error:
        reason = str(error).strip().splitlines()[0]
        raise OSError(
            f"dataset_name={name!r} could not be loaded ({reason}): check the name, or the network and "
            f"HF_HUB_OFFLINE.{hint}"
        ) from error


def _built_in_hint(name: str) -> str:
    close = difflib.get_close_matches(name, BUILT_IN_DATASETS, n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r} (built in, offline)?" if close else ""


def _check_hub_dataset(name: str, token: str | None, hint: str) -> None:
    """Raises a one-line OSError unless the Hub answers that it has dataset `name` (or that it is gated)."""
    where = f"dataset_name={name!r} is not a built-in dataset ({', '.join(BUILT_IN_DATASETS)}) nor a local folder"
    try:
        HfApi().dataset_info(name, token=token, timeout=HUB_TIMEOUT)
    except GatedRepoError:
        return  # it exists: the download says what access it needs
    except (RepositoryNotFoundError, HFValidationError):
        raise OSError(
            f"{where}, and the Hub ({constants.ENDPOINT}) has no such dataset: check the name (org/name), "
            f"or log in (`hf auth login`) if it is private.{hint}"
        ) from None
    except (httpx2.TransportError, HfHubHTTPError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(
            f"{where}, so it was looked up on the Hub ({constants.ENDPOINT}), which could not be reached "
            f"({reason}). Check the network connection and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the "
            f"datasets cache.{hint}"
        ) from error


def _check_two_classes(folders: dict[str, str]) -> None:
    """
    Refuses image folders whose files sit in one class sub-folder in all: datasets' imagefolder then drops the labels
    altogether (it labels by sub-folder only when there are two or more), and no classifier can be trained.
    """
    classes = {
        child.name
        for folder in folders.values()
        for child in Path(folder).iterdir()
        if child.is_dir() and any(path.is_file() for path in child.rglob("*"))
    }
    if len(classes) == 1:
        named = ", ".join(f"{split}_dir={folder!r}" for split, folder in folders.items())
        raise ValueError(
            f"{named}: one class only, {classes.pop()!r}; a classifier needs at least two classes, one "
            "sub-folder of images per class."
        )


def _detect_column(dataset: Dataset, given: str | None, candidates: tuple[str, ...], argument: str) -> str:
    columns = dataset.column_names
    if given:
        if given not in columns:
            raise ValueError(
                f"{argument}={given!r} is not a column of the dataset; its columns are {columns}: "
                f"set {argument} to one of them."
            )
        return given
    for name in candidates:
        if name in columns:
            return name
    kind = argument.split("_")[0]
    hint = " (an image folder needs one sub-folder per class)" if kind == "label" and columns == ["image"] else ""
    raise ValueError(f"Could not find the {kind} column among the dataset's columns {columns}; set {argument}{hint}.")


def _split_names(raw: DatasetDict) -> dict[str, str]:
    """Maps train/validation/test to the dataset's own split names."""
    names = {}
    if "train" in raw:
        names["train"] = "train"
    validation = next((name for name in VALIDATION_SPLITS if name in raw), None)
    if validation:
        names["validation"] = validation
    if "test" in raw:
        names["test"] = "test"
    return names


def load_image_datasets(
    args: DataArguments, seed: int = 42, cache_dir: str | None = None, token: str | None = None
) -> tuple[DatasetDict, list[str]]:
    """
    Loads the data named by `args` as a DatasetDict with `train`, `validation` (carved from train when missing) and
    `test` where the source has one, each with columns `image` (undecoded, see `transforms.decode_image`), `label`
    (ClassLabel) and `example_id` (the row number in the split). With `train_samples_per_class`, train holds K images
    of each class (see `samples_per_class`) and a `source_row` column: each image's row in the data's own train split.
    Returns it with the label names.
    """
    raw = _load_raw(args, cache_dir, token)
    splits = _split_names(raw)
    if not splits:
        raise ValueError(f"The dataset has splits {list(raw)}; vit-ft needs train, validation or test.")
    first = raw[next(iter(splits.values()))]
    image_column = _detect_column(first, args.image_column_name, IMAGE_COLUMNS, "image_column_name")
    label_column = _detect_column(first, args.label_column_name, LABEL_COLUMNS, "label_column_name")
    data = DatasetDict(
        {ours: raw[theirs].select_columns([image_column, label_column]) for ours, theirs in splits.items()}
    )
    renames = {old: new for old, new in ((image_column, "image"), (label_column, "label")) if old != new}
    if renames:
        data = data.rename_columns(renames)
    _check_not_empty(data, "in the data")
    data = _drop_unlabelled(data)
    data, names = _encode_labels(data)
    _check_labels(data, names)
    few_shot = args.train_samples_per_class is not None and "train" in data
    if few_shot:
        data["train"] = data["train"].add_column(SOURCE_ROW, list(range(len(data["train"]))))
    if "train" in data and "validation" not in data and args.train_val_split > 0:
        parts = data["train"].train_test_split(test_size=args.train_val_split, seed=seed, stratify_by_column="label")
        data["train"], data["validation"] = parts["train"], parts["test"]
    if few_shot:
        # From the pool left after the validation carve: validation never shares an image with the K per class.
        rows = samples_per_class(data["train"]["label"], args.train_samples_per_class, seed, names)
        data["train"] = data["train"].select(rows)
    if args.max_train_samples is not None and "train" in data:
        data["train"] = data["train"].shuffle(seed=seed).select(range(min(args.max_train_samples, len(data["train"]))))
    for split in ("validation", "test"):
        if args.max_eval_samples is not None and split in data:
            data[split] = data[split].select(range(min(args.max_eval_samples, len(data[split]))))
    _check_not_empty(data, "after max_train_samples/max_eval_samples/train_val_split")
    # Decoding happens in the transforms, on the fly in the dataloader workers, so a broken file can be skipped.
    data = data.cast_column("image", Image(decode=False))
    # Row numbers, the only ids: they seed each example's augmentation and corruption noise (see `seeding`), so an
    # example draws the same whatever batch, worker or process reads it.
    data = DatasetDict(
        {split: dataset.add_column("example_id", list(range(len(dataset)))) for split, dataset in data.items()}
    )
    return data, names


def first_of_each_class(labels: list[int], count: int) -> list[int]:
    """Rows of each class's first image in turn (class 0, 1, 2, ..., then each class's second), `count` in all or
    every row: a few images that show every class, for examples and samples."""
    by_class: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        by_class.setdefault(label, []).append(row)
    queues = [rows for _, rows in sorted(by_class.items())]
    rows = []
    while len(rows) < count and any(queues):
        rows.extend(queue.pop(0) for queue in queues if queue)
    return rows[:count]


def samples_per_class(labels: list[int], k: int, seed: int, names: list[str]) -> list[int]:
    """
    The rows of a stratified few-shot subset of a split whose labels are `labels`: `k` rows of each class of `names`,
    in row order. Each class draws from its own generator, seeded by (`seed`, class id), so the subset is the same in
    every run with that seed, whatever the other classes hold, and a smaller `k`'s rows are the first of a larger
    `k`'s (K = 1 within K = 5 within K = 10), as few-shot curves compare them. A class with fewer than `k` rows is
    a one-line error that names it and its count.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(names))  # (classes,)
    short = [f"{names[i]!r} has {counts[i]}" for i in range(len(names)) if counts[i] < k]
    if short:
        fix = f"Lower it to at most {counts.min()}" if counts.min() else "Remove the classes without images"
        raise ValueError(
            f"train_samples_per_class={k} is more than the training pool (after the validation split) "
            f"holds of {len(short)} class(es): {', '.join(short)}. {fix}, or add images of those "
            "classes."
        )
    rows = []
    for class_id in range(len(names)):
        generator = np.random.default_rng([seed, class_id])
        rows.extend(generator.permutation(np.flatnonzero(labels == class_id))[:k].tolist())
    return sorted(rows)


def train_subset_record(train: Dataset, k: int, seed: int, names: list[str]) -> dict:
    """
    What train_subset.json says of a few-shot train split (from `load_image_datasets`): K, the seed, and each class's
    rows in the data's own train split.
    """
    rows = {name: [] for name in names}
    for row, label in zip(train[SOURCE_ROW], train["label"]):
        rows[names[label]].append(row)
    return {
        "train_samples_per_class": k,
        "seed": seed,
        "images": len(train),
        "rows_of": "the data's own train split, before the validation split is carved",
        "rows": rows,
    }


def _encode_labels(data: DatasetDict) -> tuple[DatasetDict, list[str]]:
    """Gives every split the same ClassLabel: the dataset's own, or one built from the label values."""
    feature = next(iter(data.values())).features["label"]
    if isinstance(feature, ClassLabel):
        return data, list(feature.names)
    values = sorted({value for split in data.values() for value in split.unique("label")})
    if isinstance(values[0], str):
        names = values
    elif values[0] < 0:
        raise ValueError(f"The label column holds class id {values[0]}; ids must run from 0 to N-1.")
    else:
        names = [str(value) for value in range(values[-1] + 1)]
    return data.cast_column("label", ClassLabel(names=names)), names


def _check_not_empty(data: DatasetDict, where: str) -> None:
    for split, dataset in data.items():
        if len(dataset) == 0:
            raise ValueError(
                f"The {split} split is empty {where}: give it examples, or raise max_train_samples/"
                "max_eval_samples if one of them is 0."
            )


def _check_labels(data: DatasetDict, names: list[str]) -> None:
    """Every label id is in the label map, and every class of validation/test also has training examples."""
    seen = {split: set(dataset.unique("label")) for split, dataset in data.items()}
    for split, ids in seen.items():
        outside = sorted((i for i in ids if i is None or not 0 <= i < len(names)), key=str)
        if outside:
            raise ValueError(
                f"The {split} split has label(s) {outside} outside the label map ({len(names)} classes, "
                f"ids 0..{len(names) - 1}): fix or remove those examples."
            )
    if "train" not in seen:
        return
    for split, ids in seen.items():
        missing = sorted(names[i] for i in ids - seen["train"])
        if missing:
            raise ValueError(
                f"The {split} split has class(es) {missing} that the train split lacks: the model could "
                "never learn them. Add training examples of them, or remove them from the split."
            )


def _drop_unlabelled(data: DatasetDict) -> DatasetDict:
    """
    Leaves out a validation or test split without labels (all -1 or None, as ImageNet-1k's test split on the Hub):
    it cannot be scored. A train split without labels stays, for `_check_labels` to refuse.
    """
    for split in [name for name in data if name != "train"]:
        if set(data[split].unique("label")) <= {-1, None}:
            logger.warning(
                f"The {split} split has no labels (all -1 or missing): it is left out, as it cannot be scored."
            )
            del data[split]
    return data
