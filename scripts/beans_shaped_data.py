"""Stand-ins for the beans recipe's Hub sources, for a machine that cannot reach the Hub: an image folder of beans'
shape and a ViT-B/16 written by transformers itself in the layout of google/vit-base-patch16-224-in21k.

beans (AI-Lab-Makerere/beans on the Hub): 3 leaf classes, 1,034 / 133 / 128 train / validation / test images of
500x500 pixels. The stand-in images are smooth colour fields plus noise saved as JPEG, one tint per class, so the
run has something to learn; the weights are transformers' random initialisation. The run this makes possible checks
that the recipe runs on a GPU end to end (data loading, bf16, evaluation, checkpoints), not the recipe's accuracy.

    python scripts/beans_shaped_data.py --output /tmp/beans_shaped
    vit-ft train recipes/full_finetune/vit_base_in21k_beans.yaml --model_name_or_path /tmp/beans_shaped/vit-base \
        --dataset_name "" --train_dir /tmp/beans_shaped/train --validation_dir /tmp/beans_shaped/validation \
        --test_dir /tmp/beans_shaped/test --label_column_name label

`--small` writes 12 / 6 / 6 images of 64x64 and a tiny model, to check the commands on a CPU.
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from transformers import ViTConfig, ViTImageProcessor, ViTModel

CLASSES = ("angular_leaf_spot", "bean_rust", "healthy")
SPLITS = {"train": 1034, "validation": 133, "test": 128}
SIZE = 500


def write_image(path: Path, class_index: int, seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    tint = np.zeros(3)
    tint[class_index] = 80.0
    field = rng.normal(0, 1, (size // 25 + 1, size // 25 + 1, 3)).repeat(25, 0).repeat(25, 1)[:size, :size]
    pixels = 100 + tint + 30 * field + rng.normal(0, 10, (size, size, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def write_images(output: Path, splits: dict[str, int], size: int) -> None:
    jobs = []
    for split, count in splits.items():
        for index in range(count):
            class_index = index % len(CLASSES)
            folder = output / split / CLASSES[class_index]
            folder.mkdir(parents=True, exist_ok=True)
            jobs.append((folder / f"{split}_{index:04d}.jpg", class_index, hash((split, index)) % 2**32, size))
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_image, *zip(*jobs), chunksize=32))


def write_model(output: Path, small: bool) -> None:
    # google/vit-base-patch16-224-in21k's config (transformers' ViTConfig defaults), or a tiny one with --small.
    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    config = ViTConfig(**(tiny if small else {}))
    ViTModel(config, add_pooling_layer=True).save_pretrained(output)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        output
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="Folder to write train/, validation/, test/ and vit-base/ to.")
    parser.add_argument("--small", action="store_true", help="A few small images and a tiny model (CPU check).")
    args = parser.parse_args()
    output = Path(args.output)
    splits = {"train": 12, "validation": 6, "test": 6} if args.small else SPLITS
    write_images(output, splits, 64 if args.small else SIZE)
    write_model(output / "vit-base", args.small)
    print(f"Wrote {sum(splits.values())} images and a transformers ViT to {output}")


if __name__ == "__main__":
    main()
