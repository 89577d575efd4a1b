"""Shards written by `vit-ft shard` and read back as a stream: round trip, coverage per epoch, resume, damage."""

import io
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import fsspec
import pytest
import webdataset
from PIL import Image
from torchdata.stateful_dataloader import StatefulDataLoader

from vit_ft.cli import main
from vit_ft.data import MissingExtraError
from vit_ft.data.arguments import DataArguments
from vit_ft.data.datasets import load_image_datasets
from vit_ft.data.readers import expand_shards
from vit_ft.data.sharding import image_bytes
from vit_ft.data.streams import DamagedShardError, TrainStream
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

SHARD_SIZE = 300  # digits' 1,437 training images: 5 shards, the last of 237


def _ids(batch: dict) -> dict:
    """A stand-in transform: the example's id and label, no image work."""
    return {"id": batch["example_id"], "label": batch["label"], "epoch": batch["epoch"]}


def write_digits_shards(folder: Path, shard_format: str = "webdataset") -> dict:
    main(
        [
            "shard",
            "--dataset_name",
            "digits",
            "--output_dir",
            str(folder),
            "--format",
            shard_format,
            "--shard_size",
            str(SHARD_SIZE),
        ]
    )
    return json.loads((folder / "shards.json").read_text())


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shards") / "digits"
    write_digits_shards(folder)
    return folder


def _streamed(folder: Path, suffix: str = "tar", **fields):
    pattern = f"{folder}/train-{{000000..000004}}.{suffix}"
    data, names = load_image_datasets(DataArguments(train_shards=pattern, **fields))
    return data["train"], names


@pytest.mark.parametrize("shard_format,suffix", [("webdataset", "tar"), ("parquet", "parquet")])
def test_shards_round_trip_the_images_and_labels(tmp_path, shard_format, suffix):
    record = write_digits_shards(tmp_path / "shards", shard_format)
    assert record["splits"] == {
        "train": f"train-{{000000..000004}}.{suffix}",
        "test": f"test-{{000000..000001}}.{suffix}",
    }
    assert [record["examples"][f"train-{i:06d}.{suffix}"] for i in range(5)] == [300, 300, 300, 300, 237]
    source, names = load_image_datasets(DataArguments(dataset_name="digits", train_val_split=0))
    split, streamed_names = _streamed(tmp_path / "shards", suffix)
    assert streamed_names == names and split.examples == len(source["train"]) == 1437
    back = {}
    for example in split.dataset:
        row = int(Path(example["image"]["path"]).stem)  # each image is named by its row in the source split
        back[row] = (example["image"]["bytes"], example["label"])
    assert len(back) == 1437
    for row, example in enumerate(source["train"]):
        assert back[row] == (image_bytes(example["image"]), example["label"])
    # The test split is read whole, map-style, with the same class names.
    pattern = f"{tmp_path}/shards/test-{{000000..000001}}.{suffix}"
    data, _ = load_image_datasets(DataArguments(test_shards=pattern))
    assert sorted(data["test"]["label"]) == sorted(source["test"]["label"])


def test_shard_refuses_a_folder_that_holds_files(tmp_path, shards):
    with pytest.raises(SystemExit, match="is not empty"):
        main(["shard", "--dataset_name", "digits", "--output_dir", str(shards)])


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_every_example_once_per_epoch_across_processes_with_equal_batches(shards, world_size):
    """5 shards (an odd count) over 1, 2 and 3 processes: whole shards dealt out, the rest striped."""
    split, _ = _streamed(shards)
    batch = 16
    seen_by_rank = []
    for rank in range(world_size):
        stream = TrainStream(split, _ids, batch, seed=0, rank=rank, world_size=world_size)
        ids = [example["id"] for example in stream]
        assert len(ids) == len(stream)  # whole batches, the same on every process: nothing waits in a collective
        seen_by_rank.append(ids)
    assert len({len(ids) for ids in seen_by_rank}) == 1
    seen = Counter(id_ for ids in seen_by_rank for id_ in ids)
    assert len(seen) == 1437  # every example of the epoch
    padding = sum(seen.values()) - 1437
    assert padding < world_size * batch  # at most a batch's padding per process, as DistributedSampler pads
    assert max(seen.values()) == (2 if padding else 1)


def test_epochs_draw_new_orders_and_max_steps_runs_pass_after_pass(shards):
    split, _ = _streamed(shards)
    stream = TrainStream(split, _ids, 16, seed=0, shuffle_shards=2)
    first = [example["id"] for example in stream]
    stream.set_epoch(1)
    second = [example["id"] for example in stream]
    assert set(first) == set(second) and len(set(first)) == 1437 and first != second
    split.examples = None  # no declared count: a run of max_steps goes on from one pass to the next
    endless = TrainStream(split, _ids, 16, seed=0, shuffle_shards=2)
    with pytest.raises(TypeError):
        len(endless)
    examples = iter(endless)
    passes = [next(examples) for _ in range(1437 * 2 + 5)]
    assert Counter(example["id"] for example in passes[:1437]) == Counter(set(first))
    assert {example["epoch"] for example in passes} == {0, 1, 2}  # the pass seeds the augmentation


def test_a_few_shards_mix_in_the_shuffle(shards):
    split, _ = _streamed(shards)
    ids = [example["id"] for example in TrainStream(split, _ids, 16, seed=0, shuffle_shards=4)]
    shard_of = [id_ >> 32 for id_ in ids[:100]]
    assert len(set(shard_of)) == 4  # the first 100 examples come from the 4 shards read together


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_the_stream_without_reading_it_again(shards, workers, monkeypatch):
    split, _ = _streamed(shards)

    def loader():
        stream = TrainStream(split, _ids, 16, seed=0, shuffle_shards=2, rank=1, world_size=2)
        return StatefulDataLoader(stream, batch_size=16, num_workers=workers, collate_fn=lambda examples: examples)

    whole = [example["id"] for batch in loader() for example in batch]
    stopped = loader()
    batches = iter(stopped)
    before = [example["id"] for _ in range(30) for example in next(batches)]
    state = json.loads(json.dumps(stopped.state_dict()))  # as the checkpoint holds it
    del batches

    reads = []
    read_shard = TrainStream._read_shard
    monkeypatch.setattr(TrainStream, "_read_shard", lambda self, shard: reads.append(shard) or read_shard(self, shard))
    resumed = loader()
    resumed.load_state_dict(state)
    after = iter(resumed)
    first = next(after)
    if workers == 0:  # shard reads are seen in this process only without workers
        assert len(reads) <= 2  # one group of shuffle_shards shards read again, not the 30 batches before
    rest = [example["id"] for example in first] + [example["id"] for batch in after for example in batch]
    assert before + rest == whole


def test_a_damaged_shard_is_named_and_skipped_or_fatal_with_strict_images(tmp_path, shards, caplog):
    folder = tmp_path / "damaged"
    folder.mkdir()
    for file in shards.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    damaged = folder / "train-000002.tar"
    damaged.write_bytes(damaged.read_bytes()[:60_000])  # cut mid-file, as an interrupted copy
    split, _ = _streamed(folder)
    with caplog.at_level(logging.WARNING):
        ids = [example["id"] for example in TrainStream(split, _ids, 16, seed=0)]
    assert len(ids) == 1440  # the epoch keeps its length: the stream starts over where the shard fell short
    assert any(f"Shard {damaged} is damaged" in record.getMessage() for record in caplog.records)
    strict, _ = _streamed(folder)
    with pytest.raises(DamagedShardError, match=f"Shard {damaged} is damaged.*take it out of train_shards"):
        list(TrainStream(strict, _ids, 16, seed=0, strict=True))


def test_shard_patterns_and_stream_fields_are_checked_in_one_line(tmp_path, shards):
    assert len(expand_shards(f"{shards}/train-{{000000..000004}}.tar")) == 5
    with pytest.raises(FileNotFoundError, match=r"2 of its 7 shard\(s\) do not exist, first .*train-000005.tar"):
        expand_shards(f"{shards}/train-{{000000..000006}}.tar")
    with pytest.raises(ValueError, match="both name the data"):
        DataArguments(dataset_name="digits", train_shards=f"{shards}/train-000000.tar")
    with pytest.raises(ValueError, match="streaming: true streams a Hub dataset"):
        DataArguments(train_dir=str(tmp_path), streaming=True)
    with pytest.raises(ValueError, match="max_train_samples picks rows"):
        DataArguments(train_shards=f"{shards}/train-000000.tar", max_train_samples=10)


def test_shards_stream_from_an_fsspec_url_with_their_record(shards):
    """fsspec's in-memory filesystem stands where s3:// or hf:// would: the same URL code path, no network."""
    memory = fsspec.filesystem("memory")
    for path in shards.iterdir():
        memory.pipe(f"/digits-bucket/{path.name}", path.read_bytes())
    try:
        data, names = load_image_datasets(
            DataArguments(
                train_shards="memory://digits-bucket/train-{000000..000004}.tar",
                test_shards="memory://digits-bucket/test-{000000..000001}.tar",
            )
        )
        assert names == [str(digit) for digit in range(10)] and data["train"].examples == 1437  # from shards.json
        assert len(data["test"]) == 360
        seen = Counter(example["id"] for example in TrainStream(data["train"], _ids, 16, seed=0))
        assert len(seen) == 1437
    finally:
        memory.rm("/digits-bucket", recursive=True)


def test_a_url_whose_filesystem_is_not_installed_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # s3fs cannot be imported, as where it is not installed
    with pytest.raises(
        MissingExtraError, match=r"train_shards='s3://b/train-\{0..1\}.tar': .*pip install 'vit-ft\[s3\]'"
    ):
        expand_shards("s3://b/train-{0..1}.tar")
    with pytest.raises(ValueError, match="Protocol not known: zz; shards are local paths or fsspec URLs"):
        expand_shards("zz://b/train-0.tar")


def test_a_stream_without_an_example_count_needs_max_steps(tmp_path, shards):
    (tmp_path / "bare").mkdir()
    for index in range(5):  # without shards.json nothing declares the count
        name = f"train-{index:06d}.tar"
        (tmp_path / "bare" / name).write_bytes((shards / name).read_bytes())
    (tmp_path / "bare" / "shards.json").write_text(json.dumps({"label_names": [str(d) for d in range(10)]}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "preset: vit_tiny_patch16_224\n"
        "model_overrides: {image_size: 16, patch_size: 4, hidden_size: 32, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 37}\n"
        f"train_shards: {tmp_path}/bare/train-{{000000..000004}}.tar\n"
        f"output_dir: {tmp_path / 'out'}\nuse_cpu: true\nreport_to: none\n"
    )
    flags = ["train", str(recipe)]
    with pytest.raises(SystemExit, match="declares no example count.*set train_examples .* or max_steps"):
        main(flags)
    flags += ["--max_steps", "2", "--dataloader_num_workers", "1", "--dataloader_persistent_workers", "true"]
    with pytest.raises(SystemExit, match="dataloader_persistent_workers with a streamed train split"):
        main(flags)


def test_a_dataset_folder_streams_its_train_split_as_a_hub_dataset_does(tmp_path):
    """`streaming: true` on a dataset name: here a local folder of parquet files, which `load_dataset` reads as it
    reads a Hub repository's."""
    write_digits_shards(tmp_path / "repo", "parquet")
    data, names = load_image_datasets(DataArguments(dataset_name=str(tmp_path / "repo"), streaming=True))
    split = data["train"]
    assert names == [str(digit) for digit in range(10)] and split.dataset.n_shards == 5
    assert split.examples is None  # a folder has no card that counts its examples: train_examples or max_steps
    assert len(data["test"]) == 360  # read whole
    split.examples = 1437
    ids = [example["id"] for example in TrainStream(split, _ids, 16, seed=0)]
    assert len(set(ids)) == 1437


def test_an_image_folder_round_trips_through_parquet_shards(tmp_path):
    for index in range(6):
        folder = tmp_path / "images" / ("cat" if index % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (5 + index, 7), (index * 40, 0, 0)).save(folder / f"{index}.jpg")
    main(
        [
            "shard",
            "--train_dir",
            str(tmp_path / "images"),
            "--output_dir",
            str(tmp_path / "shards"),
            "--format",
            "parquet",
            "--shard_size",
            "4",
        ]
    )
    source, names = load_image_datasets(DataArguments(train_dir=str(tmp_path / "images"), train_val_split=0))
    data, streamed_names = load_image_datasets(
        DataArguments(train_shards=f"{tmp_path}/shards/train-{{000000..000001}}.parquet")
    )
    back = {int(Path(e["image"]["path"]).stem): (e["image"]["bytes"], e["label"]) for e in data["train"].dataset}
    assert streamed_names == names == ["cat", "dog"] and data["train"].examples == 6
    assert back == {row: (image_bytes(e["image"]), e["label"]) for row, e in enumerate(source["train"])}


def test_a_streamed_run_skips_and_counts_a_bad_image_under_corruptions_and_mixup(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    good = io.BytesIO()
    Image.new("L", (8, 8), 128).save(good, format="PNG")
    with webdataset.TarWriter(str(folder / "train-000000.tar")) as tar:
        for index in range(40):
            content = b"not an image" if index == 7 else good.getvalue()
            tar.write({"__key__": f"{index:08d}", "png": content, "cls": index % 2})
    (folder / "shards.json").write_text(json.dumps({"label_names": ["a", "b"], "examples": {"train-000000.tar": 40}}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "preset: vit_tiny_patch16_224\n"
        "model_overrides: {image_size: 16, patch_size: 4, hidden_size: 32, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 37}\n"
        f"train_shards: {folder}/train-000000.tar\nimage_corruptions: gaussian_noise,jpeg\n"
        "mixup_alpha: 0.5\ncutmix_alpha: 0.5\nper_device_train_batch_size: 8\nnum_train_epochs: 1\n"
        f"output_dir: {tmp_path / 'out'}\nuse_cpu: true\nreport_to: none\nsave_strategy: 'no'\n"
    )
    results = run_training(read_recipe(recipe))
    assert results["train_skipped_images"] == 1 and results["epoch"] == 1


def test_pretraining_streams_its_images_from_shards(tmp_path):
    main(
        [
            "shard",
            "--dataset_name",
            "digits",
            "--train_val_split",
            "0.1",
            "--output_dir",
            str(tmp_path / "shards"),
            "--shard_size",
            "300",
        ]
    )
    recipe = tmp_path / "mae.yaml"
    recipe.write_text(
        "preset: vit_tiny_patch16_224\n"
        "model_overrides: {image_size: 16, patch_size: 2, hidden_size: 32, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 37}\n"
        "decoder_hidden_size: 32\ndecoder_num_hidden_layers: 1\ndecoder_num_attention_heads: 2\n"
        "decoder_intermediate_size: 37\n"
        f"train_shards: {tmp_path}/shards/train-{{000000..000004}}.tar\n"
        f"validation_shards: {tmp_path}/shards/validation-{{000000..000000}}.tar\n"
        "per_device_train_batch_size: 64\nnum_train_epochs: 1\nsave_strategy: 'no'\n"
        f"output_dir: {tmp_path / 'mae'}\nuse_cpu: true\nreport_to: none\n"
    )
    main(["pretrain", str(recipe)])
    results = json.loads((tmp_path / "mae" / "all_results.json").read_text())
    assert results["epoch"] == 1 and results["train_skipped_images"] == 0 and results["eval_loss"] > 0
    steps = results["train_steps_per_second"] * results["train_runtime"]
    assert round(steps) == 21  # ceil(1,293 / 64): the epoch shards.json declares
    assert (tmp_path / "mae" / "reconstructions.png").is_file()


def test_a_streamed_resume_with_other_dataloader_workers_is_one_line(tmp_path, shards):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "preset: vit_tiny_patch16_224\n"
        "model_overrides: {image_size: 16, patch_size: 4, hidden_size: 32, num_hidden_layers: 1, "
        "num_attention_heads: 2, intermediate_size: 37}\n"
        f"train_shards: {shards}/train-{{000000..000004}}.tar\nper_device_train_batch_size: 64\n"
        "max_steps: 6\nsave_strategy: steps\nsave_steps: 3\n"
        f"output_dir: {tmp_path / 'out'}\nuse_cpu: true\nreport_to: none\n"
    )
    main(["train", str(recipe), "--max_steps", "3"])
    flags = ["train", str(recipe), "--resume_from_checkpoint", "latest", "--dataloader_num_workers", "1"]
    with pytest.raises(SystemExit, match="saved with dataloader_num_workers=0 and this run has 1.*Set dataloader_num"):
        main(flags)
    main(flags[:-2] + ["--dataloader_num_workers", "0"])  # as it was saved: it resumes
    assert json.loads((tmp_path / "out" / "all_results.json").read_text())["epoch"] > 0
