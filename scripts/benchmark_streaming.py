"""The streamed shard pipeline against the map-style one on the same images, and how long a streamed run resumes.

Both pipelines are `vit-ft train`'s own: `vit_ft.train.build_trainer` builds a trainer from a recipe whose data is the
image folder (`train_dir`, map-style) or the webdataset shards `vit-ft shard` wrote from that folder
(`train_shards`, streamed), and `trainer.get_train_dataloader()` gives the loader training iterates: read, decode,
augment (RandomResizedCrop, flip, normalise) in `--workers` dataloader workers, collate. The model is left out: it is
the same on both sides, so images/s of the loaders alone is the comparison (and the stricter one: with the model's
step in between, the workers have time to fill their queues). The control is a second map-style trainer measured in
the same round: its ratio to the first shows the noise. Each round measures map-style, streamed, control, in that
order; a measurement is one epoch's batches after the first `--warmup` batches; the figures are medians over rounds.

Resume: the streamed loader is stopped after `k` batches (two sizes, `--resume-at`), its state taken as a
checkpoint takes it, and a new loader (new workers) loads it: the time from `load_state_dict` to the first batch.
Beside it, for the same `k`, the time to the first new batch by reading the `k` batches again (what resuming an
iterable without its position costs).

The images are the ones `benchmark_train.py` writes (256x256 JPEG, about 20 KB, 10 classes), in a temporary folder or
`--data-dir`.

    python scripts/benchmark_streaming.py --images 4096 --batch-size 32 --workers 2 --rounds 3
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from benchmark_common import machine_info
from benchmark_train import SEED, write_image_folder

from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.data.arguments import AugmentationArguments, DataArguments
from vit_ft.data.datasets import load_image_datasets
from vit_ft.data.sharding import write_shards
from vit_ft.hub.arguments import HubArguments
from vit_ft.recipe import Recipe
from vit_ft.train import build_trainer
from vit_ft.training.arguments import DistillationArguments, LoraArguments, ViTTrainingArguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096, help="Images in the folder (and the shards).")
    parser.add_argument("--shard-size", type=int, default=512, help="Examples per shard.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="Dataloader workers of each loader.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=4, help="Batches left out of each measurement's clock.")
    parser.add_argument("--resume-at", type=int, nargs=2, default=[8, 96], help="Two batch counts to resume after.")
    parser.add_argument("--preset", default="vit_small_patch16_224")
    parser.add_argument("--data-dir", type=Path, help="Image folder to write (or reuse); a temporary one otherwise.")
    return parser.parse_args(argv)


def recipe(args: argparse.Namespace, data: DataArguments, work_dir: Path) -> Recipe:
    training = ViTTrainingArguments(
        output_dir=str(work_dir / "trainer"),
        num_train_epochs=1,
        per_device_train_batch_size=args.batch_size,
        dataloader_num_workers=args.workers,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=SEED,
    )
    return Recipe(
        model=ModelArguments(preset=args.preset, cache_dir=str(work_dir / "datasets_cache")),
        data=data,
        augmentation=AugmentationArguments(),
        lora=LoraArguments(),
        distillation=DistillationArguments(),
        hub=HubArguments(),
        training=training,
    )


def images_per_s(loader, warmup: int, batch_size: int) -> float:
    """Images/s over one pass of `loader`, after its first `warmup` batches (workers starting, first files read)."""
    batches = iter(loader)
    for _ in range(warmup):
        next(batches)
    start, count = time.perf_counter(), 0
    for batch in batches:
        count += len(batch["pixel_values"])
    return count / (time.perf_counter() - start)


def resume_seconds(trainer, at: int) -> dict[str, float]:
    """Seconds to the first batch after `at` batches: from the saved position, and by reading them again."""
    stopped = trainer.get_train_dataloader()
    batches = iter(stopped)
    for _ in range(at):
        next(batches)
    state = json.loads(json.dumps(stopped.state_dict()))  # as a checkpoint holds it
    del batches
    resumed = trainer.get_train_dataloader()
    start = time.perf_counter()
    resumed.load_state_dict(state)
    next(iter(resumed))
    from_position = time.perf_counter() - start
    start = time.perf_counter()
    replay = iter(trainer.get_train_dataloader())
    for _ in range(at + 1):
        next(replay)
    return {"from_saved_position_s": from_position, "reading_again_s": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = Path(temporary)
        folder = args.data_dir or work_dir / "images"
        mean_bytes = write_image_folder(folder, args.images)
        shards = work_dir / "shards"
        data, names = load_image_datasets(DataArguments(train_dir=str(folder), train_val_split=0))
        record = write_shards(data, names, shards, "webdataset", args.shard_size, SEED)
        pattern = f"{shards}/{record['splits']['train']}"
        map_style = DataArguments(train_dir=str(folder), train_val_split=0)
        streamed = DataArguments(train_shards=pattern)
        trainers = {
            "map_style": build_trainer(recipe(args, map_style, work_dir))[0],
            "streamed": build_trainer(recipe(args, streamed, work_dir))[0],
            "control": build_trainer(recipe(args, map_style, work_dir))[0],
        }
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                {
                    name: images_per_s(trainer.get_train_dataloader(), args.warmup, args.batch_size)
                    for name, trainer in trainers.items()
                }
            )
        medians = {name: statistics.median(r[name] for r in rounds) for name in trainers}
        resume = {at: resume_seconds(trainers["streamed"], at) for at in args.resume_at}
    result = {
        "machine": machine_info(torch.device("cpu"), transformers=transformers.__version__),
        "images": args.images,
        "mean_jpeg_bytes": round(mean_bytes),
        "shards": len(record["examples"]),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "rounds": rounds,
        "images_per_s": medians,
        "streamed_over_map_style": medians["streamed"] / medians["map_style"],
        "control_over_map_style": medians["control"] / medians["map_style"],
        "resume": resume,
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
