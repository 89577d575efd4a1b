"""Image decoding, torchvision.transforms.v2 pipelines sized from the image processor, and batch-level mixing."""

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage
from torchvision.transforms import v2

from ..output_dir import DamagedFileError, read_json
from .arguments import AugmentationArguments
from .seeding import example_seed

logger = logging.getLogger(__name__)


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """Converts any PIL mode to RGB: 16-bit and float images are rescaled to 8 bits, transparency over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        image = PILImage.fromarray(np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        background = PILImage.new("RGBA", image.size, (255, 255, 255, 255))
        image = PILImage.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def decode_image(value) -> PILImage.Image:
    """Decodes an undecoded `datasets.Image` value (`{"bytes", "path"}`) or a PIL image into RGB."""
    if isinstance(value, PILImage.Image):
        return to_rgb(value)
    source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
    with PILImage.open(source) as image:
        image.load()
        return to_rgb(image)


def _sizes(processor) -> tuple[tuple[int, int], tuple[int, int]]:
    """(resize, crop) sizes from a transformers image processor: ViT resizes only, DeiT resizes then crops."""
    size = processor.size
    resize = (size["height"], size["width"]) if "height" in size else (size["shortest_edge"],) * 2
    crop = getattr(processor, "crop_size", None)
    if getattr(processor, "do_center_crop", False) and crop:
        return resize, (crop["height"], crop["width"])
    return resize, resize


def build_train_transform(processor, augmentation: AugmentationArguments) -> v2.Compose:
    """RandomResizedCrop, flip, optional RandAugment/TrivialAugmentWide, normalisation, RandomErasing."""
    _, crop = _sizes(processor)
    crop_scale = (augmentation.random_resized_crop_min_scale, 1.0)
    steps = [
        v2.PILToTensor(),
        v2.RandomResizedCrop(crop, scale=crop_scale, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
    ]
    if augmentation.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if augmentation.auto_augment == "randaugment":
        steps.append(v2.RandAugment(interpolation=v2.InterpolationMode.BILINEAR))
    elif augmentation.auto_augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide(interpolation=v2.InterpolationMode.BILINEAR))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(processor.image_mean, processor.image_std)]
    if augmentation.random_erasing > 0:
        steps.append(v2.RandomErasing(p=augmentation.random_erasing))
    return v2.Compose(steps)


@dataclass(frozen=True)
class ProcessorSizes:
    """
    The fields of a transformers image processor that `build_eval_transform` reads, read from its
    preprocessor_config.json as plain JSON: transformers' image processors import its modeling code, which serving an
    exported model does without. The transform built from these is the one built from the processor itself.
    """

    size: dict[str, int]
    image_mean: list[float]
    image_std: list[float]
    do_center_crop: bool = False
    crop_size: dict[str, int] | None = None

    @classmethod
    def from_json(cls, path: str | Path) -> "ProcessorSizes":
        config = read_json(
            path, "Write it again with the image processor's save_pretrained (`vit-ft export` for an export)."
        )
        if config is None:
            raise FileNotFoundError(f"{path} does not exist: save the image processor there with save_pretrained.")
        if not isinstance(config, dict):
            raise DamagedFileError(f"{path} holds a JSON {type(config).__name__}, not an image processor's fields.")
        missing = [name for name in ("size", "image_mean", "image_std") if name not in config]
        if missing:
            raise ValueError(
                f"{path} has no {', '.join(missing)}: write it with the image processor's "
                "save_pretrained, which writes every field."
            )
        return cls(
            size=config["size"],
            image_mean=config["image_mean"],
            image_std=config["image_std"],
            do_center_crop=bool(config.get("do_center_crop")),
            crop_size=config.get("crop_size"),
        )

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the pixel values the transform produces."""
        return _sizes(self)[1]


def check_pixel_values(pixel_values: torch.Tensor, size: tuple[int, int], channels: int = 3) -> None:
    """
    Raises a one-line ValueError unless `pixel_values` is what a model of input `size` (height, width) takes: a
    floating-point (batch, `channels`, height, width) tensor of at least one image. Integer pixels (0..255 straight
    from an image) would be scored silently as if normalised; other shapes fail deep inside the model.
    """
    if not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values are {pixel_values.dtype}, not floating point: pass the images through the "
            "model's image processor (or build_eval_transform), which scales and normalises them."
        )
    expected = (channels, *size)
    if pixel_values.ndim != 4 or pixel_values.shape[0] == 0 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"pixel_values of shape {tuple(pixel_values.shape)}: expected (batch, "
            f"{', '.join(map(str, expected))}) with at least one image; resize the images with the "
            "model's image processor (or build_eval_transform)."
        )


def build_eval_transform(processor) -> v2.Compose:
    """Resize, center crop and normalisation of a transformers image processor or its `ProcessorSizes`."""
    resize, crop = _sizes(processor)
    return v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(resize, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(crop),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(processor.image_mean, processor.image_std),
        ]
    )


class ExampleTransform:
    """
    `datasets.set_transform` function: decodes and transforms each image of a batch on the fly (in the dataloader
    workers). An image that fails to decode becomes `None`, dropped by `collate_images`, unless `strict`.

    With a `seed`, each example's random augmentation is drawn from its own generator seeded by (seed, `example_id`,
    `epoch`) (see `seeding.example_seed`), not from the process's random stream: the same example gets the same
    augmentation whatever the worker, process count or resume point, which makes a resumed run end with the weights
    of an uninterrupted one. The batch's `epoch` column, which `epochs.EpochDataset` adds in training, gives the epoch;
    without one it is 0.
    """

    def __init__(self, transform: v2.Compose, strict: bool = False, seed: int | None = None):
        self.transform = transform
        self.strict = strict
        self.seed = seed

    def __call__(self, batch: dict) -> dict:
        # Unlabelled images (pretraining) have no label column.
        labels = {"labels": batch["label"]} if "label" in batch else {}
        if self.seed is None:
            return {"pixel_values": [self._transform(value) for value in batch["image"]], **labels}
        if "example_id" not in batch:
            raise ValueError(
                f"A seeded ExampleTransform needs an example_id column; the batch has {list(batch)}: "
                "load the data with vit_ft.data.datasets.load_image_datasets."
            )
        epochs = batch.get("epoch", [0] * len(batch["image"]))
        # Seed the default CPU generator (the one v2 transforms draw from) per example, and give the process its own
        # stream back afterwards, so loading data in the main process leaves dropout and MixUp draws untouched.
        generator = torch.random.default_generator
        state = generator.get_state()
        try:
            pixel_values = []
            for value, example_id, epoch in zip(batch["image"], batch["example_id"], epochs):
                generator.manual_seed(example_seed(self.seed, example_id, epoch=epoch))
                pixel_values.append(self._transform(value))
        finally:
            generator.set_state(state)
        return {"pixel_values": pixel_values, **labels}

    def _transform(self, value) -> torch.Tensor | None:
        try:
            return self.transform(decode_image(value))
        except Exception as error:  # PIL raises many types for broken files
            where = (value.get("path") if isinstance(value, dict) else None) or "(in-memory bytes)"
            if self.strict:
                raise ValueError(
                    f"Cannot decode image {where}: {error}. Fix or remove the file, or set "
                    "strict_images false to skip such images."
                ) from error
            logger.warning(f"Skipping image {where} that cannot be decoded ({error}); strict_images makes this fatal.")
            return None


SKIPPED_IMAGES = "skipped_images"


def collate_images(examples: list[dict]) -> dict[str, torch.Tensor]:
    """
    Stacks examples into `pixel_values` (batch, 3, H, W) and `labels` (batch,; none for unlabelled images), leaving out
    undecodable ones, and counts those under `SKIPPED_IMAGES`: `ViTTrainer` takes the count out before the model sees
    the batch.
    """
    kept = [example for example in examples if example["pixel_values"] is not None]
    if not kept:
        raise ValueError(
            f"None of the {len(examples)} images of this batch could be decoded; see the warnings above. "
            "Check the image files, or remove the broken ones."
        )
    batch = {"pixel_values": torch.stack([example["pixel_values"] for example in kept])}
    if "labels" in kept[0]:
        batch["labels"] = torch.tensor([example["labels"] for example in kept])
    return {**batch, SKIPPED_IMAGES: torch.tensor(len(examples) - len(kept))}
