"""
`vit-ft shard`: writes the splits of an image folder, a Hub dataset or a built-in data set into webdataset (.tar) or
parquet shards of a set number of examples, with `shards.json` (`readers.SHARDS_RECORD`): the class names, each
shard's example count and each split's brace pattern, which a recipe's train_shards/validation_shards/test_shards take.
"""

import io
from pathlib import Path

import numpy as np
import webdataset
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage

from ..output_dir import write_json
from .readers import SHARD_FORMATS, SHARDS_RECORD

FORMAT_SUFFIXES = {builder: suffix for suffix, builder in SHARD_FORMATS.items()}
# Webdataset keys name each file's kind by its extension; datasets reads these as images.
PIL_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff", "GIF": "gif"}


def write_shards(
    data: DatasetDict, label_names: list[str], output_dir: str | Path, shard_format: str, shard_size: int, seed: int
) -> dict:
    """
    Writes each split of `data` (columns `image`, undecoded, and `label`, as `load_image_datasets` gives them) into
    `output_dir` as `<split>-000000.tar`, ... (or `.parquet`), `shard_size` examples each, in a seeded order (so that
    neighbouring examples of the source, often of one class, spread over the shards), then `shards.json`. Each
    example is named by its row in the split (`00000042.png`, the parquet image's path): what came from where.
    Returns the record written. Refuses a folder that already holds shards.
    """
    if shard_format not in FORMAT_SUFFIXES:
        raise ValueError(f"format={shard_format!r}: choose webdataset or parquet.")
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size} must be at least 1 (examples per shard).")
    folder = Path(output_dir)
    if folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: write the shards into a new folder, so none is overwritten.")
    folder.mkdir(parents=True, exist_ok=True)
    record = {"format": shard_format, "label_names": label_names, "splits": {}, "examples": {}}
    for split, dataset in data.items():
        rows = np.random.default_rng(seed).permutation(len(dataset)).tolist()
        files = []
        for start in range(0, len(rows), shard_size):
            name = f"{split}-{len(files):06d}{FORMAT_SUFFIXES[shard_format]}"
            chunk = rows[start : start + shard_size]
            writer = _write_tar if shard_format == "webdataset" else _write_parquet
            writer(folder / name, dataset.select(chunk), chunk, label_names)
            record["examples"][name] = len(chunk)
            files.append(name)
        suffix = FORMAT_SUFFIXES[shard_format]
        record["splits"][split] = f"{split}-{{000000..{len(files) - 1:06d}}}{suffix}"
    write_json(folder / SHARDS_RECORD, record)  # last: a folder with shards.json holds every shard
    return record


def image_bytes(value: dict) -> bytes:
    """The encoded bytes of an undecoded `datasets.Image` value, read from its file where it holds only a path."""
    if value.get("bytes") is not None:
        return value["bytes"]
    return Path(value["path"]).read_bytes()


def _extension(content: bytes, row: int) -> str:
    try:
        with PILImage.open(io.BytesIO(content)) as image:
            kind = image.format
    except Exception as error:  # PIL raises many types for broken files
        raise ValueError(f"Row {row} is not an image PIL can read ({error}): fix or remove it first.") from error
    if kind not in PIL_EXTENSIONS:
        raise ValueError(f"Row {row} is a {kind} image, which webdataset shards do not name: use format parquet.")
    return PIL_EXTENSIONS[kind]


def _write_tar(path: Path, rows: Dataset, source_rows: list[int], label_names: list[str]) -> None:
    with webdataset.TarWriter(str(path)) as tar:
        for row, example in zip(source_rows, rows):
            content = image_bytes(example["image"])
            tar.write({"__key__": f"{row:08d}", _extension(content, row): content, "cls": example["label"]})


def _write_parquet(path: Path, rows: Dataset, source_rows: list[int], label_names: list[str]) -> None:
    images = []
    for row, example in zip(source_rows, rows):
        content = image_bytes(example["image"])
        images.append({"bytes": content, "path": f"{row:08d}.{_extension(content, row)}"})
    features = Features({"image": Image(), "label": ClassLabel(names=label_names)})
    Dataset.from_dict({"image": images, "label": rows["label"]}, features=features).to_parquet(str(path))
