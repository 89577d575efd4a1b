"""
Whether a heat map shows what the model uses: the deletion curve. The patches of each image are replaced by the
image's mean colour in the map's order, most relevant first, and the probability of the class the model predicted on
the intact image is read after each step (Petsiuk et al. 2018, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", the deletion metric; Samek et al. 2017, "Evaluating the Visualization of What a Deep Neural
Network Has Learned", for patch-wise removal). A map that ranks the evidence first makes the probability fall fast:
a small area under the curve. The same images with their patches removed in random order give the baseline.

    vit-ft explain --model outputs/digits --faithfulness --dataset_name digits --method all
"""

import logging
from pathlib import Path

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from ..data.arguments import DataArguments
from ..data.corruptions import with_corruption
from ..data.transforms import SKIPPED_IMAGES, ExampleTransform, build_eval_transform, collate_images
from ..output_dir import FAITHFULNESS_FIELDS, check_result_file, faithfulness_file, write_json
from .attention_maps import attention_maps, check_method
from .evaluate import load_split

logger = logging.getLogger(__name__)

MAX_STEPS = 32  # points of a curve after the intact image: one per patch up to 32 patches, then evenly spaced
RANDOM = "random"  # the baseline's name in the results: patches removed in a random order


def deletion_order(maps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """
    The patches of `maps` `(batch, grid_h, grid_w)` from the highest value to the lowest, `(batch, patches)`, as
    flat indices. Ties (a map's zeros, where it sees no evidence) come in random order, so that they are not read
    row by row from the top of the image.
    """
    values = maps.flatten(1).float()
    shuffle = torch.rand(values.shape, generator=generator).argsort(dim=1).to(values.device)
    ranked = values.gather(1, shuffle).argsort(dim=1, descending=True, stable=True)
    return shuffle.gather(1, ranked)


def deletion_curve(
    model: torch.nn.Module, pixel_values: torch.Tensor, order: torch.Tensor, steps: int | None = None
) -> torch.Tensor:
    """
    The probability `(batch, steps + 1)` of the class `model` predicts on each intact image of `pixel_values`
    `(batch, channels, H, W)`, as its patches are replaced by the image's mean colour (per channel) in `order`
    `(batch, patches)`: the intact image first, then round(s * patches / steps) patches removed at step s, the last
    with none left. `steps` defaults to one per patch, at most `MAX_STEPS`.
    """
    patch_size = model.config.patch_size
    grid = (pixel_values.shape[-2] // patch_size, pixel_values.shape[-1] // patch_size)
    patches = grid[0] * grid[1]
    if order.shape != (len(pixel_values), patches):
        raise ValueError(
            f"order of shape {tuple(order.shape)}: expected one rank per patch of each image, "
            f"({len(pixel_values)}, {patches})."
        )
    steps = steps or min(patches, MAX_STEPS)
    fill = pixel_values.mean(dim=(-2, -1), keepdim=True)  # (batch, channels, 1, 1): each image's mean colour
    rank = order.to(pixel_values.device).argsort(dim=1)  # (batch, patches): the step at which each patch goes
    probabilities = []
    with torch.inference_mode():
        predicted = None
        for step in range(steps + 1):
            removed = (rank < round(step * patches / steps)).reshape(-1, 1, *grid)  # (batch, 1, grid_h, grid_w)
            mask = removed.repeat_interleave(patch_size, dim=-2).repeat_interleave(patch_size, dim=-1)
            covered = pixel_values[..., : mask.shape[-2], : mask.shape[-1]]
            images = pixel_values.clone()
            images[..., : mask.shape[-2], : mask.shape[-1]] = torch.where(mask, fill, covered)
            logits = model(pixel_values=images, interpolate_pos_encoding=True).logits.float()
            predicted = logits.argmax(-1) if predicted is None else predicted
            probabilities.append(logits.softmax(-1).gather(1, predicted[:, None])[:, 0])
    return torch.stack(probabilities, dim=1)


def area_under_curve(curve: torch.Tensor) -> torch.Tensor:
    """The trapezoidal area under each curve `(batch, points)` over the share of patches removed, 0 to 1."""
    return ((curve[:, 1:] + curve[:, :-1]) / 2).mean(dim=1)


def faithfulness(
    model_dir: str,
    data_args: DataArguments,
    methods: list[str],
    split: str = "test",
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    output_file: str | None = None,
    overwrite: bool = False,
    base_model: str | None = None,
    trust_remote_code: bool = False,
) -> dict:
    """
    The deletion curve of each of `methods` (see `attention_maps`; each explains the predicted class) on `split` of
    the data `data_args` names, and of a random order seeded with `seed`, for the vit_ft model or LoRA adapter in
    `model_dir`. Writes JSON to `output_file` (default `model_dir/faithfulness_<split>.json`; an earlier result is
    replaced only with `overwrite`, another file never) and returns it: per method the mean area under the curve
    (`deletion_auc`, lower is more faithful) and the mean curve. Labels are not read, so any image data will do.
    """
    from ..checkpoints.loading import load_model, load_processor  # the model package: PyTorch only

    for method in methods:
        check_method(method)
    output_file = Path(output_file or Path(model_dir) / faithfulness_file(split))
    check_result_file(output_file, FAITHFULNESS_FIELDS, "explain --faithfulness", overwrite)
    model = load_model(model_dir, base_model, merge=True, trust_remote_code=trust_remote_code).eval()
    model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    data, _, carving = load_split(model_dir, data_args, split)
    processor = load_processor(model, model_dir, trust_remote_code=trust_remote_code)
    transform = ExampleTransform(build_eval_transform(processor), strict=data_args.strict_images)
    scored = with_corruption(data[split], transform, *data_args.corruption)
    curves, skipped = _curves(model, scored, methods, steps, seed, batch_size)
    results = {
        "model": str(model_dir),
        "split": split,
        "examples": len(curves[RANDOM]),
        "skipped_images": skipped,
        "steps": curves[RANDOM].shape[1] - 1,
        "seed": seed,
        "fill": "image mean",
        "explained": "predicted class",
    }
    if carving:
        results["carved_from_train"] = carving
    results["deletion_auc"] = {name: area_under_curve(curve).mean().item() for name, curve in curves.items()}
    results["deletion_curve"] = {name: curve.mean(dim=0).tolist() for name, curve in curves.items()}
    write_json(output_file, results)
    logger.info(f"Wrote {output_file}")
    return results


def _curves(
    model: torch.nn.Module, dataset: Dataset, methods: list[str], steps: int | None, seed: int, batch_size: int
) -> tuple[dict[str, torch.Tensor], int]:
    """Each method's deletion curves and the random order's, `(images, steps + 1)`, and the undecodable images."""
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    curves, skipped = {name: [] for name in (RANDOM, *methods)}, 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_images):
        skipped += int(batch.pop(SKIPPED_IMAGES))
        pixel_values = batch["pixel_values"].to(device)
        grid = (pixel_values.shape[-2] // model.config.patch_size, pixel_values.shape[-1] // model.config.patch_size)
        random_maps = torch.rand(len(pixel_values), *grid, generator=generator)
        curves[RANDOM].append(deletion_curve(model, pixel_values, deletion_order(random_maps, generator), steps))
        for method in methods:
            maps = attention_maps(model, pixel_values, method).patches
            order = deletion_order(maps.cpu(), generator)
            curves[method].append(deletion_curve(model, pixel_values, order, steps))
    if not curves[RANDOM]:
        raise ValueError("The split holds no images: no curve to draw.")
    return {name: torch.cat(found).cpu() for name, found in curves.items()}, skipped
