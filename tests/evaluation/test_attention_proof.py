"""
Proof of what the heat maps point at, on models trained by `vit-ft train` on images whose class is decided only by a
small pattern at a random patch (the pointing game: does a map's maximum fall on the pattern?).

- Clean images: the pattern on a noise texture, nothing else. A model trained on shuffled labels is the control.
- Images with a distractor: the pattern on dim noise, and a white square of the same size at another random patch,
  in every image or in half of them. The square is the brightest thing in the image and the same in every class, so
  it is no evidence: a map that peaks on it shows what is salient, not what decides the class. Each variant runs
  over three seeds, each with its shuffled-label control, against Captum's Integrated Gradients and occlusion as
  reference maps and against the deletion curve of a random order.

The images are 48x48 in 8x8 patches (36 positions). The pattern fills exactly one patch, so a map with its maximum
at a random position hits it (or the distractor) with probability 1/36 = 2.8%. docs/evaluation.md reports the
numbers these tests print.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Occlusion
from PIL import Image
from transformers import AutoImageProcessor

from vit_ft import ViTForImageClassification
from vit_ft.data.transforms import build_eval_transform
from vit_ft.evaluation.attention_maps import CLASS_SPECIFIC, DEFAULT_METHOD, METHODS, attention_maps
from vit_ft.evaluation.faithfulness import area_under_curve, deletion_curve, deletion_order
from vit_ft.hub.card import build_model_card
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

SIZE, PATCH, CLASSES = 48, 8, 4
GRID = SIZE // PATCH
RANDOM_HIT_RATE = 1 / GRID**2  # one patch's share of the image
TRAIN_IMAGES, TEST_IMAGES = 1600, 300
DARK, LIGHT, WHITE = 40, 215, 255
SEEDS = (0, 1, 2)
REFERENCES = ("integrated_gradients", "occlusion")  # Captum's, explaining the same class as the maps

RECIPE = f"""
preset: vit_tiny_patch16_224
model_overrides: {{image_size: {SIZE}, patch_size: {PATCH}, hidden_size: 64, num_hidden_layers: 2,
                  num_attention_heads: 4, intermediate_size: 128}}
train_val_split: 0.1
seed: 0
num_train_epochs: 10
per_device_train_batch_size: 64
per_device_eval_batch_size: 256
learning_rate: 0.002
weight_decay: 0.05
warmup_steps: 0.05
lr_scheduler_type: cosine
# No augmentation that moves or mirrors pixels: the pattern must stay in its patch, and a mirrored pattern would
# be another one.
random_resized_crop_min_scale: 1.0
horizontal_flip: false
eval_strategy: "no"
save_strategy: "no"
logging_steps: 50
dataloader_num_workers: 0
report_to: none
use_cpu: true
"""


def _patterns(rng: np.random.Generator) -> list[np.ndarray]:
    """One 8x8 pattern per class, half its pixels light, as the background's."""
    patterns = []
    for _ in range(CLASSES):
        pixels = np.zeros(PATCH * PATCH, dtype=bool)
        pixels[rng.choice(PATCH * PATCH, PATCH * PATCH // 2, replace=False)] = True
        patterns.append(pixels.reshape(PATCH, PATCH))
    return patterns


def _save(folder: Path, label: int, index: int, grey: np.ndarray) -> Path:
    path = folder / f"pattern_{label}" / f"{index:05d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([grey.astype(np.uint8)] * 3, axis=-1)).save(path)
    return path


def _cell(patch: int) -> tuple[slice, slice]:
    row, column = divmod(patch, GRID)
    return slice(row * PATCH, (row + 1) * PATCH), slice(column * PATCH, (column + 1) * PATCH)


def _write_images(folder: Path, count: int, patterns, rng, shuffle_labels: bool = False) -> list[dict]:
    """
    `count` images in `folder/<class>/`: noise with the class's pattern in a random patch. With `shuffle_labels`
    the folder (the label) is drawn at random instead. Returns each image's path, true class and pattern patch.
    """
    examples = []
    for index in range(count):
        label = index % CLASSES
        light = rng.random((SIZE, SIZE)) < 0.5
        row, column = rng.integers(GRID, size=2)
        light[row * PATCH : (row + 1) * PATCH, column * PATCH : (column + 1) * PATCH] = patterns[label]
        folder_label = rng.integers(CLASSES) if shuffle_labels else label
        path = _save(folder, folder_label, index, np.where(light, LIGHT, DARK))
        examples.append({"path": path, "label": label, "patch": int(row * GRID + column), "distractor": None})
    return examples


def _write_distractor_images(
    folder: Path, count: int, patterns, rng, share: float, shuffle_labels: bool = False
) -> list[dict]:
    """
    `count` images in `folder/<class>/`: dim noise (grey levels 40 to 99) with the class's pattern (levels 40 and
    215) in a random patch and, in `share` of the images, a white square in another random patch. With
    `shuffle_labels` the folder (the label) is drawn at random. Returns each image's path, true class, pattern patch
    and distractor patch (None without one).
    """
    examples = []
    for index in range(count):
        label = index % CLASSES
        pattern, distractor = (int(patch) for patch in rng.choice(GRID**2, 2, replace=False))
        grey = DARK + rng.integers(0, 60, (SIZE, SIZE))
        grey[_cell(pattern)] = np.where(patterns[label], LIGHT, DARK)
        if rng.random() < share:
            grey[_cell(distractor)] = WHITE
        else:
            distractor = None
        path = _save(folder, rng.integers(CLASSES) if shuffle_labels else label, index, grey)
        examples.append({"path": path, "label": label, "patch": pattern, "distractor": distractor})
    return examples


def _train(root: Path, name: str, train_dir: Path, test_dir: Path, seed: int = 0) -> tuple[Path, dict]:
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    output = root / name
    flags = ["--train_dir", str(train_dir), "--test_dir", str(test_dir), "--output_dir", str(output)]
    return output, run_training(read_recipe(str(recipe), [*flags, "--seed", str(seed)]))


def _reference_maps(model, pixel_values: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Captum's maps `(images, grid, grid)` of the same classes: attributions summed over each patch's pixels."""

    def logits(pixels):
        return model(pixel_values=pixels).logits

    # Integrated Gradients from the normalised zero image (mid-grey); occlusion by that grey, one patch at a time.
    integrated = IntegratedGradients(logits).attribute(
        pixel_values, torch.zeros_like(pixel_values), target=labels, n_steps=32, internal_batch_size=len(labels)
    )
    occluded = Occlusion(logits).attribute(
        pixel_values, sliding_window_shapes=(3, PATCH, PATCH), strides=(3, PATCH, PATCH), baselines=0, target=labels
    )
    per_patch = {
        name: attribution.detach().sum(dim=1).reshape(-1, GRID, PATCH, GRID, PATCH).sum(dim=(2, 4))
        for name, attribution in zip(REFERENCES, (integrated, occluded))
    }
    return per_patch


def _pointing_game(model_dir: Path, examples: list[dict], correct_only: bool = False) -> dict:
    """
    Per method (and Captum reference), the share of images whose map is highest on the pattern's patch (`evidence`)
    and, among images with a distractor, on the distractor's (`distractor`). Class-specific maps explain the true
    class. With `correct_only`, only the images the model classifies right count; `images` says how many did.
    """
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    transform = build_eval_transform(AutoImageProcessor.from_pretrained(model_dir))
    pixel_values = torch.stack([transform(Image.open(example["path"]).convert("RGB")) for example in examples])
    labels = torch.tensor([example["label"] for example in examples])
    patches = torch.tensor([example["patch"] for example in examples])
    # -1 where an image has no distractor: no peak falls there.
    distractors = torch.tensor([-1 if found["distractor"] is None else found["distractor"] for found in examples])
    with torch.no_grad():
        counted = model(pixel_values=pixel_values).logits.argmax(-1) == labels if correct_only else labels >= 0
    maps = {method: attention_maps(model, pixel_values, method, labels=labels).patches for method in METHODS}
    maps.update(_reference_maps(model, pixel_values, labels))
    hits = {"images": int(counted.sum())}
    for name, found in maps.items():
        peaks = found.flatten(1).argmax(dim=1)
        hits[name] = {"evidence": (peaks == patches)[counted].float().mean().item()}
        if (distractors >= 0).any():
            hits[name]["distractor"] = (peaks == distractors)[counted & (distractors >= 0)].float().mean().item()
    return hits


def _deletion_aucs(model_dir: Path, examples: list[dict]) -> dict[str, float]:
    """The mean area under the deletion curve of each method's order (explaining the predicted class), of the
    references' and of a random order: lower means the order finds what the prediction rests on sooner."""
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    transform = build_eval_transform(AutoImageProcessor.from_pretrained(model_dir))
    pixel_values = torch.stack([transform(Image.open(example["path"]).convert("RGB")) for example in examples])
    with torch.no_grad():
        predicted = model(pixel_values=pixel_values).logits.argmax(-1)
    generator = torch.Generator().manual_seed(0)
    maps = {"random": torch.rand(len(examples), GRID, GRID, generator=generator)}
    maps.update({method: attention_maps(model, pixel_values, method).patches for method in METHODS})
    maps.update(_reference_maps(model, pixel_values, predicted))
    return {
        name: area_under_curve(deletion_curve(model, pixel_values, deletion_order(found, generator))).mean().item()
        for name, found in maps.items()
    }


@pytest.mark.slow
def test_attention_maps_point_at_the_pattern(tmp_path):
    rng = np.random.default_rng(0)
    patterns = _patterns(rng)
    _write_images(tmp_path / "train", TRAIN_IMAGES, patterns, rng)
    _write_images(tmp_path / "shuffled", TRAIN_IMAGES, patterns, rng, shuffle_labels=True)
    test = _write_images(tmp_path / "test", TEST_IMAGES, patterns, rng)

    model_dir, results = _train(tmp_path, "model", tmp_path / "train", tmp_path / "test")
    control_dir, control_results = _train(tmp_path, "control", tmp_path / "shuffled", tmp_path / "test")
    hits, control_hits = _pointing_game(model_dir, test), _pointing_game(control_dir, test)
    print(
        json.dumps(
            {
                "test_accuracy": results["test_accuracy"],
                "pointing": hits,
                "random": RANDOM_HIT_RATE,
                "shuffled_test_accuracy": control_results["test_accuracy"],
                "shuffled_pointing": control_hits,
            }
        )
    )

    evidence = {name: found["evidence"] for name, found in hits.items() if name != "images"}
    assert results["test_accuracy"] >= 0.95
    assert evidence[DEFAULT_METHOD] >= 0.95
    assert evidence["gradient_rollout"] >= 0.90 and evidence["rollout"] >= 0.80
    assert min(evidence["gradient_rollout"], evidence["rollout"]) > 10 * RANDOM_HIT_RATE
    # Shuffled labels: nothing to learn (chance accuracy on the true labels), and maps that no longer find the
    # pattern: within 5 points of a random map's hit rate.
    assert control_results["test_accuracy"] < 0.4
    for method in ("rollout", *CLASS_SPECIFIC):
        assert abs(control_hits[method]["evidence"] - RANDOM_HIT_RATE) < 0.05, (method, control_hits[method])

    # The run's own picture of its maps, shown on its card.
    assert (model_dir / "attention_maps.png").is_file()
    assert "![attention maps (test split)](attention_maps.png)" in str(build_model_card(model_dir, "tester/pattern"))


@pytest.mark.slow
@pytest.mark.parametrize("share", [1.0, 0.5], ids=["distractor_in_every_image", "distractor_in_half"])
def test_class_specific_maps_find_the_pattern_not_a_bright_distractor(tmp_path, share):
    runs = []
    for seed in SEEDS:
        root = tmp_path / f"seed_{seed}"
        rng = np.random.default_rng(seed)
        patterns = _patterns(rng)
        _write_distractor_images(root / "train", TRAIN_IMAGES, patterns, rng, share)
        _write_distractor_images(root / "shuffled", TRAIN_IMAGES, patterns, rng, share, shuffle_labels=True)
        test = _write_distractor_images(root / "test", TEST_IMAGES, patterns, rng, share)
        model_dir, results = _train(root, "model", root / "train", root / "test", seed)
        control_dir, control_results = _train(root, "control", root / "shuffled", root / "test", seed)
        runs.append(
            {
                "seed": seed,
                "test_accuracy": results["test_accuracy"],
                # The goal counts the images the model gets right; the control gets none right but by chance, so all
                # its images count, its class-specific maps explaining the true class.
                "pointing": _pointing_game(model_dir, test, correct_only=True),
                "shuffled_test_accuracy": control_results["test_accuracy"],
                "shuffled_pointing": _pointing_game(control_dir, test),
                "deletion_auc": _deletion_aucs(model_dir, test),
            }
        )
    print(json.dumps({"distractor_share": share, "random": RANDOM_HIT_RATE, "runs": runs}))

    for run in runs:
        pointing, control, deletion = run["pointing"], run["shuffled_pointing"], run["deletion_auc"]
        assert run["test_accuracy"] >= 0.95, run["seed"]
        # The goal (>= 90% on the pattern, <= 5% on the distractor), with the margin the default keeps on every
        # seed: it reaches 100% and 0% on each (docs/evaluation.md).
        assert pointing[DEFAULT_METHOD]["evidence"] >= 0.95 and pointing[DEFAULT_METHOD]["distractor"] <= 0.03, run
        # As good as Captum's references, which perturb the input rather than read the model's internals.
        for reference in REFERENCES:
            assert pointing[reference]["evidence"] > 10 * RANDOM_HIT_RATE, (reference, run)
            assert pointing[DEFAULT_METHOD]["evidence"] >= pointing[reference]["evidence"] - 0.02, (reference, run)
        # The model that learned nothing: chance accuracy or below, and a default map that finds the pattern far
        # less often. Not at a random map's rate: with nothing learned, every map (Captum's too) follows what is
        # bright, and in an image without the square the pattern is the brightest patch.
        assert run["shuffled_test_accuracy"] < 0.4, run
        assert pointing[DEFAULT_METHOD]["evidence"] - control[DEFAULT_METHOD]["evidence"] >= 0.5, run
        # Faithfulness: removing patches in the default's order makes the prediction fall far sooner than random.
        assert deletion[DEFAULT_METHOD] <= 0.5 * deletion["random"], run
