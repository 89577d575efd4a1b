"""
Proof that the attention maps point at the evidence: a model trained by `vit-ft train` on images whose class is
decided only by a small pattern, placed at a random position on a noise texture, has maps whose maximum falls on
the pattern (the pointing game); a model trained on shuffled labels does not.

The images are 48x48 in 8x8 patches (36 positions). The pattern fills exactly one patch, so a map with its maximum
at a random position hits it with probability 1/36 = 2.8%, the pattern's share of the image. Pattern and
background are drawn from the same two grey levels at the same density (half the pixels light), so nothing but the
arrangement of the pattern's pixels marks it out.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from vit_ft import ViTForImageClassification
from vit_ft.data.transforms import build_eval_transform
from vit_ft.evaluation.attention_maps import attention_maps
from vit_ft.hub.card import build_model_card
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

SIZE, PATCH, CLASSES = 48, 8, 4
GRID = SIZE // PATCH
RANDOM_HIT_RATE = 1 / GRID**2  # the pattern's share of the image
TRAIN_IMAGES, TEST_IMAGES = 1600, 300

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
        grey = np.where(light, 215, 40).astype(np.uint8)
        folder_label = rng.integers(CLASSES) if shuffle_labels else label
        path = folder / f"pattern_{folder_label}" / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([grey] * 3, axis=-1)).save(path)
        examples.append({"path": path, "label": label, "patch": int(row * GRID + column)})
    return examples


def _train(root: Path, name: str, train_dir: Path, test_dir: Path) -> tuple[Path, dict]:
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    output = root / name
    flags = ["--train_dir", str(train_dir), "--test_dir", str(test_dir), "--output_dir", str(output)]
    return output, run_training(read_recipe(str(recipe), flags))


def _pointing_game(model_dir: Path, examples: list[dict]) -> dict[str, float]:
    """Per method, the share of images whose map is highest on the pattern's patch; class-specific maps explain
    the true class."""
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    transform = build_eval_transform(AutoImageProcessor.from_pretrained(model_dir))
    pixel_values = torch.stack([transform(Image.open(example["path"]).convert("RGB")) for example in examples])
    labels = torch.tensor([example["label"] for example in examples])
    patches = torch.tensor([example["patch"] for example in examples])
    hits = {}
    for method in ("rollout", "gradient_rollout", "last_layer"):
        maps = attention_maps(model, pixel_values, method, labels=labels).patches  # (images, 6, 6)
        hits[method] = (maps.flatten(1).argmax(dim=1) == patches).float().mean().item()
    return hits


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
    print(json.dumps({"test_accuracy": results["test_accuracy"], "pointing": hits, "random": RANDOM_HIT_RATE,
                      "shuffled_test_accuracy": control_results["test_accuracy"], "shuffled_pointing": control_hits}))

    assert results["test_accuracy"] >= 0.95
    assert hits["gradient_rollout"] >= 0.90 and hits["rollout"] >= 0.80
    assert min(hits["gradient_rollout"], hits["rollout"]) > 10 * RANDOM_HIT_RATE
    # Shuffled labels: nothing to learn (chance accuracy on the true labels), and maps that no longer find the
    # pattern: within 5 points of a random map's hit rate.
    assert control_results["test_accuracy"] < 0.4
    for method in ("rollout", "gradient_rollout"):
        assert abs(control_hits[method] - RANDOM_HIT_RATE) < 0.05, (method, control_hits[method])

    # The run's own picture of its maps, shown on its card.
    assert (model_dir / "attention_maps.png").is_file()
    assert "![attention maps (test split)](attention_maps.png)" in str(build_model_card(model_dir, "tester/pattern"))
