"""
One reader per kind of source: the built-in data sets, image folders, a Hub dataset (downloaded or streamed) and
webdataset or parquet shards (local paths or fsspec URLs: hf://, s3://, gs://). `reader_for` picks the reader a
`DataArguments` names. Each reader's `load` gives the source's splits; `iterable` says whether its train split streams
(a `datasets.IterableDataset`, read shard by shard, see `vit_ft.data.streams`) or is a map-style `Dataset`, read by row
numbers. Evaluation splits are always map-style: they are read whole into the datasets cache.
"""

import difflib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import fsspec
import httpx2
import numpy as np
from braceexpand import braceexpand
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, IterableDataset, load_dataset
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, HFValidationError, RepositoryNotFoundError

from . import MissingExtraError
from .arguments import DataArguments

logger = logging.getLogger(__name__)

# How long the one lookup of a Hub dataset may wait: datasets alone retries an unreachable Hub for about 30 s.
HUB_TIMEOUT = 5.0
# The shard formats `train_shards` and `vit-ft shard` know, by file suffix, and the datasets builder that reads each.
SHARD_FORMATS = {".tar": "webdataset", ".parquet": "parquet"}
# Written by `vit-ft shard` beside its shards: the class names and each shard's example count.
SHARDS_RECORD = "shards.json"


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


@dataclass
class StreamedSplit:
    """
    A train split that streams: `dataset` (a `datasets.IterableDataset` of `dataset.n_shards` shards), the names
    that messages give its shards, and how many examples it holds (None where nothing declares it).
    """

    dataset: IterableDataset
    shard_names: list[str]
    examples: int | None
    label_names: list[str] | None = None


@dataclass
class BuiltInReader:
    """A data set shipped inside an installed package (`BUILT_IN_DATASETS`): nothing is downloaded."""

    name: str
    iterable = False

    def load(self) -> dict:
        return dict(BUILT_IN_DATASETS[self.name]())


@dataclass
class ImageFolderReader:
    """Image folders, one sub-folder of images per class, per split (datasets' imagefolder builder)."""

    folders: dict[str, str]
    cache_dir: str | None = None
    iterable = False

    def load(self) -> dict:
        for split, folder in self.folders.items():
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
        _check_two_classes(self.folders)
        data_files = {split: f"{folder}/**" for split, folder in self.folders.items()}
        return dict(load_dataset("imagefolder", data_files=data_files, cache_dir=self.cache_dir))


@dataclass
class HubReader:
    """A Hub dataset (or a local dataset folder, which `load_dataset` also takes), downloaded whole."""

    name: str
    config_name: str | None = None
    cache_dir: str | None = None
    token: str | None = None
    iterable = False

    def load(self) -> dict:
        return dict(load_named_dataset(self.name, self.config_name, self.cache_dir, self.token))


@dataclass
class HubStreamReader(HubReader):
    """A Hub dataset whose train split streams (`streaming: true`); its other splits are downloaded whole."""

    iterable = True

    def load(self) -> dict:
        streamed = load_named_dataset(self.name, self.config_name, self.cache_dir, self.token, streaming=True)
        if "train" not in streamed:
            raise ValueError(f"dataset_name={self.name!r} has no train split to stream; its splits: {list(streamed)}.")
        train = streamed.pop("train")
        split_info = (train.info.splits or {}).get("train")
        examples = split_info.num_examples if split_info is not None and split_info.num_examples else None
        names = [f"{self.name} shard {index}" for index in range(train.n_shards)]
        splits = {"train": StreamedSplit(train, names, examples)}
        for split in streamed:
            splits[split] = load_dataset(
                self.name, self.config_name, split=split, cache_dir=self.cache_dir, token=self.token
            )
        return splits


@dataclass
class ShardReader:
    """
    Webdataset or parquet shards per split (`train_shards`, ...), each a path or URL with brace ranges. The train
    split streams; the others are read whole. Class names and example counts come from the shards' `shards.json`
    (`vit-ft shard` writes it) where there is one.
    """

    patterns: dict[str, str]
    cache_dir: str | None = None

    @property
    def iterable(self) -> bool:
        return "train" in self.patterns

    def load(self) -> dict:
        splits = {}
        for split, pattern in self.patterns.items():
            files = expand_shards(pattern, f"{split}_shards")
            builder = shard_format(files, f"{split}_shards")
            record = read_shards_record(files[0])
            if split == "train":
                dataset = load_dataset(builder, data_files={"train": files}, split="train", streaming=True)
                examples = _declared_examples(files, record)
                names = (record or {}).get("label_names")
                splits[split] = StreamedSplit(dataset, files, examples, names)
            else:
                dataset = load_dataset(builder, data_files={split: files}, split=split, cache_dir=self.cache_dir)
                names = (record or {}).get("label_names")
                if names and not isinstance(dataset.features.get(_label_key(dataset)), ClassLabel):
                    dataset = dataset.cast_column(_label_key(dataset), ClassLabel(names=names))
                splits[split] = dataset
        return splits


def reader_for(args: DataArguments, cache_dir: str | None = None, token: str | None = None):
    """The reader of the source `args` names."""
    if args.has_shards:
        patterns = {"train": args.train_shards, "validation": args.validation_shards, "test": args.test_shards}
        return ShardReader({split: pattern for split, pattern in patterns.items() if pattern}, cache_dir)
    if args.dataset_name in BUILT_IN_DATASETS:
        return BuiltInReader(args.dataset_name)
    if args.dataset_name:
        reader = HubStreamReader if args.streaming else HubReader
        return reader(args.dataset_name, args.dataset_config_name, cache_dir, token)
    folders = {"train": args.train_dir, "validation": args.validation_dir, "test": args.test_dir}
    return ImageFolderReader({split: folder for split, folder in folders.items() if folder}, cache_dir)


def expand_shards(pattern: str, field: str = "train_shards") -> list[str]:
    """
    The shard files `pattern` names, its brace ranges expanded (`train-{000000..000009}.tar`: ten files), in order.
    Local files must exist: a missing one is a one-line error naming it.
    """
    files = list(braceexpand(pattern))
    for protocol in sorted({file.split("://")[0] for file in files if "://" in file}):
        _check_filesystem(protocol, pattern, field)
    local = [file for file in files if "://" not in file]
    missing = [file for file in local if not os.path.isfile(file)]
    if missing:
        raise FileNotFoundError(
            f"{field}={pattern!r}: {len(missing)} of its {len(files)} shard(s) do not exist, first {missing[0]}: "
            "check the pattern's folder and brace range ({000000..000009} names ten files)."
        )
    return files


# The extra that installs each cloud filesystem fsspec does not ship itself.
FILESYSTEM_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def _check_filesystem(protocol: str, pattern: str, field: str) -> None:
    """One line where fsspec cannot read `protocol://` URLs here: an unknown protocol or its package not installed."""
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as error:
        extra = FILESYSTEM_EXTRAS.get(protocol)
        hint = f"pip install 'vit-ft[{extra}]'" if extra else "install the fsspec filesystem package for it"
        raise MissingExtraError(f"{field}={pattern!r}: {error}: {hint}.") from error
    except ValueError as error:
        raise ValueError(f"{field}={pattern!r}: {error}; shards are local paths or fsspec URLs.") from error


def shard_format(files: list[str], field: str) -> str:
    """The datasets builder of `files` by their suffix (`SHARD_FORMATS`); one format per split."""
    suffixes = {PurePosixPath(file).suffix for file in files}
    if len(suffixes) != 1 or not suffixes <= set(SHARD_FORMATS):
        raise ValueError(
            f"{field} names files with suffixes {sorted(suffixes)}: shards are webdataset .tar or .parquet "
            "files, one format per split."
        )
    return SHARD_FORMATS[suffixes.pop()]


def read_shards_record(shard: str) -> dict | None:
    """The `shards.json` beside `shard` (a path or fsspec URL), None where there is none."""
    record = f"{shard.rsplit('/', 1)[0]}/{SHARDS_RECORD}" if "/" in shard else SHARDS_RECORD
    try:
        with fsspec.open(record, "rb") as file:
            content = file.read()
    except (FileNotFoundError, OSError):
        return None
    try:
        return json.loads(content)
    except ValueError as error:
        raise ValueError(f"{record} is not valid JSON ({error}): write the shards again with vit-ft shard.") from error


def _declared_examples(files: list[str], record: dict | None) -> int | None:
    """The example count of `files` that their shards.json gives, None unless it counts every one of them."""
    counts = (record or {}).get("examples", {})
    names = [PurePosixPath(file).name for file in files]
    return sum(counts[name] for name in names) if all(name in counts for name in names) else None


def _label_key(dataset: Dataset) -> str:
    return next((name for name in ("label", "cls") if name in dataset.column_names), "label")


def load_named_dataset(
    name: str, config_name: str | None, cache_dir: str | None, token: str | None, streaming: bool = False
) -> DatasetDict:
    """
    A Hub dataset (or a local dataset folder or script, which `load_dataset` also takes), its splits streamed with
    `streaming` (an `IterableDatasetDict`). The Hub is asked once, with
    a short timeout, before `load_dataset`: a mistyped name or an unreachable Hub is then one line at once, with the
    built-in name it may have meant, rather than datasets' retries.
    """
    hint = _built_in_hint(name)
    if not os.path.exists(name) and not constants.is_offline_mode():
        _check_hub_dataset(name, token, hint)
    try:
        return load_dataset(name, config_name, cache_dir=cache_dir, token=token, streaming=streaming)
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
