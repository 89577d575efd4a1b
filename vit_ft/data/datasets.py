"""Image classification datasets for `vit-ft train`/`evaluate`: the Hub, image folders or a built-in data set
(`BUILT_IN_DATASETS`: digits, LFW faces)."""

import logging

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Image

from .arguments import DataArguments
from .readers import StreamedSplit, reader_for

logger = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "img", "images", "pixel_values", "picture", "jpg", "jpeg", "png", "webp")
# `cls` is webdataset's class id.
LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target", "category", "coarse_label", "cls")
VALIDATION_SPLITS = ("validation", "valid", "val", "eval", "dev")
# With train_samples_per_class, the train split's row number in the data's own train split (before the validation
# split is carved): how train_subset.json names the images a few-shot run trained on.
SOURCE_ROW = "source_row"


def _load_raw(args: DataArguments, cache_dir: str | None = None, token: str | None = None) -> dict:
    """The splits of the source `args` names, as its reader gives them (see `vit_ft.data.readers`)."""
    return reader_for(args, cache_dir, token).load()


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
    if isinstance(raw.get("train"), StreamedSplit):
        return _load_with_streamed_train(raw, args)
    data = _image_and_label_columns(DatasetDict(raw), args)
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


def _image_and_label_columns(raw: DatasetDict, args: DataArguments) -> DatasetDict:
    """Train, validation and test of `raw`, with their `image` and `label` columns only, unlabelled ones left out."""
    splits = _split_names(raw)
    if not splits:
        raise ValueError(f"The dataset has splits {list(raw)}; vit-ft needs train, validation or test.")
    data = DatasetDict({ours: _two_columns(raw[theirs], args) for ours, theirs in splits.items()})
    _check_not_empty(data, "in the data")
    return _drop_unlabelled(data)


def _two_columns(dataset, args: DataArguments, undecoded: bool = False):
    """
    `dataset` (map-style or streamed) with its image and label columns only, named `image` and `label`; its images
    left undecoded with `undecoded`.
    """
    image_column = _detect_column(dataset, args.image_column_name, IMAGE_COLUMNS, "image_column_name")
    label_column = _detect_column(dataset, args.label_column_name, LABEL_COLUMNS, "label_column_name")
    dataset = dataset.select_columns([image_column, label_column])
    if undecoded:  # before the rename: a streamed webdataset image renamed first loses its file name
        dataset = dataset.cast_column(image_column, Image(decode=False))
    renames = {old: new for old, new in ((image_column, "image"), (label_column, "label")) if old != new}
    return dataset.rename_columns(renames) if renames else dataset


def _load_with_streamed_train(raw: dict, args: DataArguments) -> tuple[DatasetDict, list[str]]:
    """
    `load_image_datasets` for a source whose train split streams: the `StreamedSplit` with its columns `image`
    (undecoded) and `label`, beside map-style validation and test splits read as usual (no validation split is carved
    from a stream, and the train split's rows cannot be picked).
    """
    stream = raw.pop("train")
    dataset = _two_columns(stream.dataset, args, undecoded=True)
    feature = dataset.features["label"]
    names = list(feature.names) if isinstance(feature, ClassLabel) else stream.label_names
    if not names:
        raise ValueError(
            f"The streamed train split ({stream.shard_names[0]}, ...) has class ids without names: write the shards "
            "with vit-ft shard, whose shards.json names the classes, or stream a dataset whose label is a ClassLabel."
        )
    data = _image_and_label_columns(DatasetDict(raw), args) if raw else DatasetDict()
    labels = ClassLabel(names=names)
    data = DatasetDict({split: dataset.cast_column("label", labels) for split, dataset in data.items()})
    _check_labels(data, names)
    data = data.cast_column("image", Image(decode=False))
    data = DatasetDict(
        {split: dataset.add_column("example_id", list(range(len(dataset)))) for split, dataset in data.items()}
    )
    data["train"] = StreamedSplit(dataset, stream.shard_names, stream.examples, names)
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
