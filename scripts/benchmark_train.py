"""Training throughput of `vit-ft train` end to end against the model's training step alone, at the same batch size.

End to end is the pipeline `vit-ft train` runs: a `Recipe` (the preset as `ModelArguments(preset=...)`, the image
folder as `DataArguments(train_dir=...)`, `--auto-augment` in `AugmentationArguments`, this script's
`ViTTrainingArguments`) given to `vit_ft.train.build_trainer`, which loads the JPEG files
(`load_image_datasets`), builds the model, decodes and augments on the fly in `--workers` dataloader workers, batches
with `collate_images`, and `trainer.train()` (AdamW, gradient clipping, bf16 autocast with `--bf16`) for `--warmup` +
`--steps` optimizer steps. A callback timestamps every `on_step_end`; a step's time runs from the end of the previous
step, so it includes waiting for the next batch. Model-only is the same step on inputs already on the device: the
fresh model of another trainer `build_trainer` builds from the same recipe, the optimizer that trainer builds
(`trainer.create_optimizer()`), the same autocast and the same gradient clipping: `trainer.compute_loss` (forward
with labels), backward, clip, step, zero_grad (`benchmark_common.training_step`); it leaves out the Trainer's
learning-rate scheduler step (negligible). Both synchronize CUDA after each step.

The two alternate, `--rounds` times (model-only first), so drift on a shared machine hits both alike; the reported
figures are medians over the rounds. Each round gives images/s from the median step time and from the mean step time.
The mean is the wall-clock throughput a training run gets; the median ignores occasional stalls. When workers
deliver batches in bursts (several finish at once, then the model waits), the median step can look as fast as
model-only while the mean shows the stall: trust the mean when the two disagree. With many workers a burst is up to
`--workers` batches long, so the mean over `--steps` can be off by up to about workers / steps.

Decode+augment per core: one process, `torch.set_num_threads(1)`, timing what a dataloader worker does for a batch
(`collate_images(dataset.__getitems__(indices))`: read, decode, augment, stack) over the whole training dataset of
the end-to-end trainer. Workers needed
to keep the model fed = model-only images/s / per-core images/s (plus cores for the main process; IPC to the main
process, pinning and the host-to-device copy are not in the per-core figure). The files are hot in the page cache.
On CPU the workers share the cores the model computes on, so there the ratio measures that contention.

The images (256x256 RGB, smooth colour fields plus noise, JPEG quality 90, about 20 KB each, 10 classes) are
written to a temporary folder, or `--data-dir` (kept, and reused when it already holds as many). By default there
are enough for all steps of a round to come from one epoch (at least 512): a new epoch restarts the workers.

Commands used for the reported numbers:

    # CPU (2 workers)
    python scripts/benchmark_train.py --preset vit_small_patch16_224 --batch-size 32 --rounds 2
    # GPU
    python scripts/benchmark_train.py --device cuda --bf16 --batch-size 256 --workers 14

Quick smoke test: `--preset vit_tiny_patch16_224 --batch-size 8 --steps 4 --warmup 1 --images 64 --rounds 1`.
"""

import argparse
import contextlib
import gc
import json
import math
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import numpy as np
import PIL
import torch
import torchvision
import transformers
from benchmark_common import machine_info, synchronize, training_step, usable_cpus
from PIL import Image
from transformers import PrinterCallback, TrainerCallback

from vit_ft import PRESETS
from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.data.arguments import AugmentationArguments, DataArguments
from vit_ft.data.transforms import collate_images
from vit_ft.hub.arguments import HubArguments
from vit_ft.recipe import Recipe
from vit_ft.train import build_trainer
from vit_ft.training.arguments import DistillationArguments, LoraArguments, ViTTrainingArguments
from vit_ft.training.trainer import ViTTrainer

NUM_CLASSES = 10
IMAGE_SIDE = 256  # stored size; RandomResizedCrop brings it to the model's 224
JPEG_QUALITY = 90
# Noise on top of the smooth field gives files of about 20 KB, near what 256-pixel photos take at quality 90;
# decoding time grows with the entropy-coded size, so flat images would flatter the pipeline.
NOISE_STD = 8.0
MIN_IMAGES = 512
SEED = 0

Step = Callable[[], None]


@dataclass
class Round:
    """Seconds per step after warm-up, for one round of each measurement, and the per-core decode rate."""

    model_only_step_s: list[float]
    end_to_end_step_s: list[float]
    decode_images_per_s: float


@dataclass
class Summary:
    """Medians over the rounds, in images/s."""

    batch: int
    rounds: list[Round]
    images_per_s: dict[str, float] = field(init=False, default_factory=dict)
    ratios: dict[str, float] = field(init=False, default_factory=dict)
    decode_images_per_s_per_core: float = field(init=False)
    workers_needed: float = field(init=False)

    def __post_init__(self) -> None:
        for name in ("model_only", "end_to_end"):
            for statistic in ("median", "mean"):
                per_round = [
                    self.batch / getattr(statistics, statistic)(getattr(r, f"{name}_step_s")) for r in self.rounds
                ]
                self.images_per_s[f"{name}_{statistic}_step"] = statistics.median(per_round)
        for statistic in ("median", "mean"):
            self.ratios[f"{statistic}_step"] = (
                self.images_per_s[f"end_to_end_{statistic}_step"] / self.images_per_s[f"model_only_{statistic}_step"]
            )
        self.decode_images_per_s_per_core = statistics.median(r.decode_images_per_s for r in self.rounds)
        self.workers_needed = self.images_per_s["model_only_median_step"] / self.decode_images_per_s_per_core


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vit_small_patch16_224", help="vit_ft preset (timm name).")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="Default: 32 on CPU, 256 on CUDA.")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="Timed steps per measurement and round. Default: 12 on CPU, 100 on CUDA.",
    )
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps before them (at least 1).")
    parser.add_argument(
        "--workers", type=int, default=None, help="dataloader_num_workers. Default: 2 on CPU, usable CPUs - 2 on CUDA."
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (TrainingArguments.bf16); weights fp32.")
    parser.add_argument(
        "--auto-augment",
        choices=("randaugment", "trivialaugment"),
        default=None,
        help="Add this to the training transform.",
    )
    parser.add_argument(
        "--images", type=int, default=None, help=f"JPEGs to write. Default: one epoch per round, >= {MIN_IMAGES}."
    )
    parser.add_argument("--data-dir", default=None, help="Write (or reuse) the image folder here, not in a temp dir.")
    parser.add_argument("--rounds", type=int, default=2, help="Model-only then end-to-end, this many times.")
    parser.add_argument("--output", default=None, help="Write the results as JSON to this path.")
    args = parser.parse_args(argv)
    on_cuda = args.device == "cuda"
    if on_cuda and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available.")
    if args.batch_size is None:
        args.batch_size = 256 if on_cuda else 32
    if args.steps is None:
        args.steps = 100 if on_cuda else 12
    if args.workers is None:
        # On CUDA the main process and its pin-memory thread need cores of their own besides the workers.
        args.workers = max(1, usable_cpus() - 2) if on_cuda else 2
    if args.images is None:
        args.images = max(MIN_IMAGES, args.batch_size * (args.warmup + args.steps))
    # A step's time is measured from the end of the previous one, so the first timed step needs one before it.
    if min(args.batch_size, args.steps, args.warmup, args.rounds, args.images) < 1 or args.workers < 0:
        parser.error("--batch-size, --steps, --warmup, --rounds and --images must be at least 1, --workers 0.")
    if args.preset not in PRESETS:
        parser.error(f"unknown preset {args.preset!r}; known: {', '.join(sorted(PRESETS))}")
    return args


# --- Data ---------------------------------------------------------------------------------------------------------


def synthetic_image(seed: int) -> Image.Image:
    """A smooth random colour field (a 4x4 grid upsampled bicubically) plus Gaussian noise, IMAGE_SIDE square."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BICUBIC), dtype=np.float32)
    noise = rng.standard_normal(pixels.shape, dtype=np.float32) * NOISE_STD  # (H, W, 3)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def _write_image(task: tuple[str, int]) -> int:
    path, seed = task
    synthetic_image(seed).save(path, "JPEG", quality=JPEG_QUALITY)
    return os.path.getsize(path)


def write_image_folder(root: Path, count: int) -> float:
    """Writes `count` JPEGs as root/class_<k>/<i>.jpg (k = i mod NUM_CLASSES). Returns their mean size in bytes."""
    existing = sorted(root.glob("class_*/*.jpg"))
    if len(existing) == count:
        return statistics.mean(path.stat().st_size for path in existing)
    if existing:
        raise ValueError(
            f"{root} holds {len(existing)} images, not {count}: pass --images {len(existing)} or an empty --data-dir."
        )
    for label in range(NUM_CLASSES):
        (root / f"class_{label}").mkdir(parents=True, exist_ok=True)
    tasks = [(str(root / f"class_{i % NUM_CLASSES}" / f"{i:06d}.jpg"), SEED + i) for i in range(count)]
    # Tens of thousands of images for a GPU run take minutes on one core.
    with multiprocessing.Pool(usable_cpus()) as pool:
        sizes = pool.map(_write_image, tasks, chunksize=64)
    return statistics.mean(sizes)


# --- The run ------------------------------------------------------------------------------------------------------


def build_recipe(args: argparse.Namespace, data_dir: Path, work_dir: Path) -> Recipe:
    """The recipe `vit-ft train` would read for this benchmark: the preset trained from scratch on the image folder."""
    # Only training arguments that transformers 5.17 (on the GPU machine) and later 5.x both accept.
    training = ViTTrainingArguments(
        output_dir=str(work_dir / "trainer"),
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch_size,
        dataloader_num_workers=args.workers,
        bf16=args.bf16,
        use_cpu=args.device == "cpu",
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=SEED,
    )
    return Recipe(
        model=ModelArguments(preset=args.preset, cache_dir=str(work_dir / "datasets_cache")),
        data=DataArguments(train_dir=str(data_dir), train_val_split=0),  # all of it trains: no validation split
        augmentation=AugmentationArguments(auto_augment=args.auto_augment),
        lora=LoraArguments(),
        distillation=DistillationArguments(),
        hub=HubArguments(),
        training=training,
    )


def build_run(recipe: Recipe) -> ViTTrainer:
    """A fresh trainer (model, data, transforms) built by `vit_ft.train.build_trainer`, as `vit-ft train` builds it."""
    trainer, _, label_names = build_trainer(recipe)
    assert len(label_names) == NUM_CLASSES, f"expected {NUM_CLASSES} classes, found {label_names}"
    return trainer


# --- End to end ---------------------------------------------------------------------------------------------------


class StepClock(TrainerCallback):
    """Timestamps the end of every optimizer step."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stamps: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


def step_times(stamps: list[float], warmup: int) -> list[float]:
    """Seconds of each step after the first `warmup`, each from the end of the step before it."""
    return np.diff(stamps[warmup - 1 :]).tolist()


def run_end_to_end(args: argparse.Namespace, recipe: Recipe) -> tuple[list[float], datasets.Dataset]:
    """Step times of one `trainer.train()` of the trainer `build_trainer` builds, and that trainer's training data."""
    trainer = build_run(recipe)
    clock = StepClock(trainer.args.device)
    trainer.add_callback(clock)
    trainer.remove_callback(PrinterCallback)  # with tqdm off, it would print the final metrics of every round
    trainer.train()
    assert len(clock.stamps) == trainer.args.max_steps, f"{len(clock.stamps)} steps, not {trainer.args.max_steps}"
    return step_times(clock.stamps, args.warmup), trainer.train_dataset


# --- Model only ---------------------------------------------------------------------------------------------------


def run_model_only(args: argparse.Namespace, recipe: Recipe) -> list[float]:
    """Step times of the training step alone, on the model and optimizer of a trainer `build_trainer` builds."""
    trainer = build_run(recipe)  # seeds, then builds the model (on the device) as end to end does
    trainer.model.train()
    trainer.create_optimizer()  # the optimizer `trainer.train()` would build: class, kwargs and parameter groups
    device = trainer.args.device
    size = trainer.model.config.image_size
    inputs = {
        "pixel_values": torch.randn(args.batch_size, 3, size, size, device=device),
        "labels": torch.randint(0, NUM_CLASSES, (args.batch_size,), device=device),
    }
    stamps = []
    for _ in range(args.warmup + args.steps):
        training_step(trainer, inputs, args.bf16, trainer.args.max_grad_norm)
        synchronize(device)
        stamps.append(time.perf_counter())
    return step_times(stamps, args.warmup)


# --- Decode + augment on one core ---------------------------------------------------------------------------------


@contextlib.contextmanager
def torch_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_decode(train: datasets.Dataset, batch_size: int) -> float:
    """Images/s of one process doing a dataloader worker's work (fetch, decode, augment, collate) over the dataset."""
    # EpochDataset keys: (epoch, row), as the Trainer's sampler sends them to a worker.
    order = [(0, row) for row in np.random.default_rng(SEED).permutation(len(train)).tolist()]
    with torch_threads(1):  # as in a dataloader worker, where torch runs one thread
        collate_images(train.__getitems__(order[:batch_size]))  # untimed: first calls pay for lazy imports
        start = time.perf_counter()
        for first in range(0, len(order), batch_size):
            collate_images(train.__getitems__(order[first : first + batch_size]))
        return len(order) / (time.perf_counter() - start)


# --- Reporting ----------------------------------------------------------------------------------------------------


def markdown_table(summary: Summary) -> str:
    speed = summary.images_per_s

    def per_round(name: str) -> str:
        return ", ".join(
            f"{summary.batch / statistics.median(getattr(r, f'{name}_step_s')):.1f}" for r in summary.rounds
        )

    ratio_rounds = ", ".join(
        f"{statistics.median(r.model_only_step_s) / statistics.median(r.end_to_end_step_s):.3f}"
        for r in summary.rounds
    )
    lines = [
        "| measurement | from median step | from mean step (wall clock) | per round (median step) |",
        "|---|---|---|---|",
        f"| model-only images/s | {speed['model_only_median_step']:.1f} | {speed['model_only_mean_step']:.1f} "
        f"| {per_round('model_only')} |",
        f"| end-to-end images/s | {speed['end_to_end_median_step']:.1f} | {speed['end_to_end_mean_step']:.1f} "
        f"| {per_round('end_to_end')} |",
        f"| end-to-end / model-only (goal >= 0.90) | {summary.ratios['median_step']:.3f} "
        f"| {summary.ratios['mean_step']:.3f} | {ratio_rounds} |",
        f"| decode+augment images/s, 1 core | {summary.decode_images_per_s_per_core:.1f} | | "
        + ", ".join(f"{r.decode_images_per_s:.1f}" for r in summary.rounds)
        + " |",
        f"| workers needed = model-only / per-core decode | {summary.workers_needed:.3g} | | |",
    ]
    return "\n".join(lines)


def free_memory() -> None:
    # Each round builds fresh models; drop the last ones (and their optimizer state) before timing the next.
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def benchmark(args: argparse.Namespace, work_dir: Path) -> tuple[Summary, float]:
    data_dir = Path(args.data_dir) if args.data_dir else work_dir / "images"
    mean_bytes = write_image_folder(data_dir, args.images)
    recipe = build_recipe(args, data_dir, work_dir)
    rounds = []
    for index in range(args.rounds):
        model_only = run_model_only(args, recipe)
        free_memory()
        end_to_end, train = run_end_to_end(args, recipe)
        free_memory()
        rounds.append(Round(model_only, end_to_end, measure_decode(train, args.batch_size)))
        print(
            f"round {index + 1}/{args.rounds}: median step model-only {statistics.median(model_only):.4f} s, "
            f"end-to-end {statistics.median(end_to_end):.4f} s; decode {rounds[-1].decode_images_per_s:.1f} "
            "images/s on 1 core",
            flush=True,
        )
    return Summary(args.batch_size, rounds), mean_bytes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    device = torch.device(args.device)
    hardware = machine_info(
        device,
        torchvision=torchvision.__version__,
        transformers=transformers.__version__,
        datasets=datasets.__version__,
        pillow=PIL.__version__,
    )
    print(json.dumps(hardware, indent=2), flush=True)
    with tempfile.TemporaryDirectory(prefix="vit_ft_benchmark_train_") as work_dir:
        summary, mean_bytes = benchmark(args, Path(work_dir))
    if hasattr(os, "getloadavg"):
        hardware["load_average_end"] = os.getloadavg()

    print(
        f"\n{args.preset}, batch {args.batch_size}, {'bf16' if args.bf16 else 'fp32'}, {args.device}, "
        f"{args.workers} workers, {args.images} JPEGs of {mean_bytes / 1e3:.1f} KB on average\n"
    )
    print(markdown_table(summary))
    print(
        f"\nend-to-end / model-only: {summary.ratios['median_step']:.3f} from median steps, "
        f"{summary.ratios['mean_step']:.3f} from mean steps (goal >= 0.90)"
    )
    print(
        f"workers needed on this {hardware['device_name']}: {summary.images_per_s['model_only_median_step']:.1f}"
        f" / {summary.decode_images_per_s_per_core:.1f} = {summary.workers_needed:.3g} -> "
        f"{math.ceil(summary.workers_needed)} (plus cores for the main process)"
    )
    if args.output:
        result = {
            "hardware": hardware,
            "settings": {**vars(args), "mean_jpeg_bytes": mean_bytes},
            "summary": asdict(summary),
        }
        with open(args.output, "w") as output:
            json.dump(result, output, indent=2)
        print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
