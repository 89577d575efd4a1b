"""
Image corruptions at five severities, for measuring (and later training for) robustness to low-quality images.

The idea and the 1..5 severity scale follow ImageNet-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations"); the parameter values below are vit-ft's own, not theirs.
Corruptions apply to decoded RGB images at their own resolution, before the eval transform resizes them, so blur
sigmas and JPEG blocks are in pixels of the source image.
"""

import math

import torch
from datasets import Dataset
from PIL import Image as PILImage
from torchvision.transforms import v2

from .arguments import check_corruption, corruption_list
from .seeding import example_seed
from .transforms import ExampleTransform, decode_image

# Standard deviation of additive noise on [0, 1] pixels. ImageNet-C uses 0.08..0.38; we start milder so severity 1
# is barely visible, and stop at their severity 4.
NOISE_SIGMA = (0.04, 0.08, 0.12, 0.18, 0.26)
# Gaussian blur sigma in source pixels (ImageNet-C: 1..6 on 224-pixel images; ours suit small images too).
BLUR_SIGMA = (0.5, 1.0, 1.5, 2.0, 3.0)
# JPEG quality; ImageNet-C goes down to 7, we stop at 10 where 8x8 blocks already dominate.
JPEG_QUALITY = (80, 60, 40, 20, 10)
# Share of each side kept before scaling back up, ImageNet-C's `pixelate` factors (resampled bilinearly here).
RESOLUTION_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)


def _gaussian_noise(pixels: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    # v2.GaussianNoise draws from the global RNG; a generator per image keeps results reproducible in any worker.
    image = v2.functional.to_dtype(pixels, torch.float32, scale=True)  # (3, H, W) in [0, 1]
    noise = torch.randn(image.shape, generator=generator) * NOISE_SIGMA[severity - 1]
    return v2.functional.to_dtype((image + noise).clamp(0, 1), torch.uint8, scale=True)


def _gaussian_blur(pixels: torch.Tensor, severity: int) -> torch.Tensor:
    sigma = BLUR_SIGMA[severity - 1]
    # A kernel reaching 3 sigma each side, shrunk where reflect padding needs it smaller than the image.
    half = min(math.ceil(3 * sigma), min(pixels.shape[-2:]) - 1)
    return v2.GaussianBlur(2 * half + 1, sigma)(pixels)


def _low_resolution(pixels: torch.Tensor, severity: int) -> torch.Tensor:
    height, width = pixels.shape[-2:]
    scale = RESOLUTION_SCALE[severity - 1]
    small = [max(1, round(height * scale)), max(1, round(width * scale))]
    bilinear = v2.InterpolationMode.BILINEAR
    pixels = v2.functional.resize(pixels, small, bilinear, antialias=True)  # antialiased, as a camera would average
    return v2.functional.resize(pixels, [height, width], bilinear)


def corrupt(image: PILImage.Image, name: str, severity: int, seed: int | torch.Generator = 0) -> PILImage.Image:
    """
    Returns `image` (RGB) under corruption `name` (one of `CORRUPTIONS`) at `severity` 1..5, same size. Only
    `gaussian_noise` is random: the same image, severity and `seed` (an int or a `torch.Generator`) give the same
    output.
    """
    check_corruption(name, severity)
    pixels = v2.functional.pil_to_tensor(image.convert("RGB"))  # (3, H, W) uint8
    if name == "gaussian_noise":
        generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
        pixels = _gaussian_noise(pixels, severity, generator)
    elif name == "gaussian_blur":
        pixels = _gaussian_blur(pixels, severity)
    elif name == "jpeg":
        pixels = v2.JPEG(JPEG_QUALITY[severity - 1])(pixels)
    else:
        pixels = _low_resolution(pixels, severity)
    return v2.functional.to_pil_image(pixels)


class CorruptedExampleTransform:
    """
    `datasets.set_transform` function that decodes each image of a batch and applies `names` (one, comma-separated
    or a list) to it in order, then
    hands the batch to `example_transform`, which transforms the images and skips or raises on files that do not
    decode, as usual. The noise of an example is seeded from (`seed`, its `example_id` column, `stream`), see
    `seeding.example_seed`.
    """

    def __init__(self, example_transform, names: str | list[str], severity: int, seed: int = 0, stream: int = 0):
        self.names = corruption_list(names, severity)
        self.example_transform = example_transform
        self.severity = severity
        self.seed = seed
        self.stream = stream

    def __call__(self, batch: dict) -> dict:
        images = [self._corrupt(value, example_id) for value, example_id in zip(batch["image"], batch["example_id"])]
        # The other columns, `example_id` included, pass through for a seeded (training) ExampleTransform.
        return self.example_transform({**batch, "image": images})

    def _corrupt(self, value, example_id: int):
        try:
            image = decode_image(value)
        except Exception:  # PIL raises many types for broken files
            return value  # left for ExampleTransform, which skips or raises as it does for clean images
        generator = torch.Generator().manual_seed(example_seed(self.seed, example_id, self.stream))
        for name in self.names:
            image = corrupt(image, name, self.severity, generator)
        return image


def corrupted_transform(
    example_transform, names: str | list[str] | None, severity: int, seed: int = 0, stream: int = 0
):
    """
    `example_transform` (an `ExampleTransform`, or a `CorruptedExampleTransform` to add corruptions on top of it) with
    its images first corrupted by `names` (comma-separated or a list, applied in order; a `DataArguments`'
    `image_corruptions`) at `severity`, their noise seeded from (`seed`, each example's id, `stream`): a
    `CorruptedExampleTransform` around it, or `example_transform` itself when `names` is empty.
    """
    names = corruption_list(names, severity)
    return CorruptedExampleTransform(example_transform, names, severity, seed, stream) if names else example_transform


def with_corruption(
    dataset: Dataset,
    example_transform: "ExampleTransform | CorruptedExampleTransform",
    names: str | list[str] | None,
    severity: int,
    seed: int = 0,
) -> Dataset:
    """
    Returns `dataset` (columns `image`, `label` and `example_id`, as `datasets.load_image_datasets` gives them) with
    `corrupted_transform(example_transform, names, severity, seed)` set, so its examples come out corrupted and
    transformed, identically across runs, batch sizes and dataloader workers.
    """
    transform = corrupted_transform(example_transform, names, severity, seed)
    if isinstance(transform, CorruptedExampleTransform) and "example_id" not in dataset.column_names:
        raise ValueError(
            f"The dataset has no example_id column (its columns are {dataset.column_names}), which seeds "
            "each example's noise: load it with vit_ft.data.datasets.load_image_datasets, or add the row "
            "numbers with dataset.add_column('example_id', list(range(len(dataset))))."
        )
    return dataset.with_transform(transform)
