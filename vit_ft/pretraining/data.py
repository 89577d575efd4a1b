"""Unlabelled images for `vit-ft pretrain`: a folder (flat or nested, folder names ignored), a Hub dataset's image
column, or a built-in data set's training images without their labels. Map-style datasets of undecoded images,
decoded on the fly in the transforms as `vit-ft train`'s."""

import logging
from pathlib import Path

from datasets import Dataset, DatasetDict, Image
from PIL import Image as PILImage

from ..data.datasets import IMAGE_COLUMNS, _detect_column
from ..data.readers import BUILT_IN_DATASETS, ShardReader, StreamedSplit, load_named_dataset
from .arguments import PretrainingDataArguments

logger = logging.getLogger(__name__)


def _image_files(folder: str) -> list[str]:
    """The files of `folder` and its sub-folders whose suffix PIL reads, sorted; a one-line error if none decodes."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"train_dir={folder!r} is not a directory: give the folder that holds the images.")
    suffixes = set(PILImage.registered_extensions())
    files = sorted(str(path) for path in root.rglob("*") if path.is_file() and path.suffix.lower() in suffixes)
    for path in files:  # one decodable image is enough here; the others are checked as they are read
        try:
            with PILImage.open(path) as image:
                image.load()
            return files
        except Exception:  # PIL raises many types for broken files
            continue
    raise ValueError(
        f"train_dir={folder!r} holds no decodable image ({len(files)} files with image suffixes, none "
        "opens): put image files (PNG, JPEG, ...) in it or in its sub-folders."
    )


def _raw_images(args: PretrainingDataArguments, cache_dir: str | None, token: str | None) -> Dataset:
    """The images of the source, as one Dataset with an `image` column."""
    if args.train_dir:
        return Dataset.from_dict({"image": _image_files(args.train_dir)}).cast_column("image", Image(decode=False))
    if args.dataset_name in BUILT_IN_DATASETS:
        return BUILT_IN_DATASETS[args.dataset_name]()["train"].remove_columns("label")  # the test split stays unseen
    raw = load_named_dataset(args.dataset_name, args.dataset_config_name, cache_dir, token)
    split = "train" if "train" in raw else next(iter(raw))
    column = _detect_column(raw[split], args.image_column_name, IMAGE_COLUMNS, "image_column_name")
    return raw[split].select_columns([column]).rename_columns({column: "image"} if column != "image" else {})


def load_unlabelled_images(
    args: PretrainingDataArguments, seed: int = 42, cache_dir: str | None = None, token: str | None = None
) -> DatasetDict:
    """
    `train` and `validation` (a `validation_share` of the images, at least one, held out for the evaluation loss and
    the reconstructions), each with columns `image` (undecoded) and `example_id` (the row number in the split).
    """
    if args.train_shards:
        return _streamed_images(args, cache_dir)
    images = _raw_images(args, cache_dir, token)
    if args.max_train_samples is not None:
        images = images.shuffle(seed=seed).select(range(min(args.max_train_samples, len(images))))
    if len(images) < 2:
        raise ValueError(
            f"The pretraining data holds {len(images)} image(s): it needs at least 2, one to train on "
            "and one held out."
        )
    held_out = max(1, round(len(images) * args.validation_share))
    parts = images.train_test_split(test_size=held_out, seed=seed)
    data = DatasetDict(train=parts["train"], validation=parts["test"]).cast_column("image", Image(decode=False))
    return DatasetDict(
        {split: dataset.add_column("example_id", list(range(len(dataset)))) for split, dataset in data.items()}
    )


def _streamed_images(args: PretrainingDataArguments, cache_dir: str | None) -> dict:
    """
    `train`: a `StreamedSplit` of the train shards' images (column `image`, undecoded); `validation`: the held-out
    shards' images read whole, with `example_id`.
    """
    splits = ShardReader({"train": args.train_shards, "validation": args.validation_shards}, cache_dir).load()
    stream = splits["train"]
    column = _detect_column(stream.dataset, args.image_column_name, IMAGE_COLUMNS, "image_column_name")
    # Undecoded before the rename: a streamed webdataset image renamed first loses its file name.
    train = stream.dataset.select_columns([column]).cast_column(column, Image(decode=False))
    train = train.rename_columns({column: "image"}) if column != "image" else train
    held_out = splits["validation"]
    column = _detect_column(held_out, args.image_column_name, IMAGE_COLUMNS, "image_column_name")
    held_out = held_out.select_columns([column]).rename_columns({column: "image"} if column != "image" else {})
    held_out = held_out.cast_column("image", Image(decode=False))
    return {
        "train": StreamedSplit(train, stream.shard_names, args.train_examples or stream.examples),
        "validation": held_out.add_column("example_id", list(range(len(held_out)))),
    }
