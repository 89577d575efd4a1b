"""The demo's example images: the first test image of each class, from the data the run recorded in its recipe.

Only data at hand is used: a built-in data set (offline) or the run's `test_dir` where it still exists. A Hub data
set is not downloaded to show a few examples; such a demo starts without them.
"""

import logging
from pathlib import Path

from ..data.datasets import first_of_each_class
from ..data.readers import BUILT_IN_DATASETS
from ..data.transforms import decode_image
from ..output_dir import RECIPE, read_yaml

logger = logging.getLogger(__name__)

MAX_EXAMPLES = 10
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def write_examples(model_dir: str, folder: Path, count: int = MAX_EXAMPLES) -> list[Path]:
    """
    Writes up to `count` test images of the run in `model_dir` to `folder` as PNG files named `<label>_<n>.png`,
    one per class in the order of the classes, and returns their paths; none when the folder records no run (a Hub
    id, a converted model) or its test data is not at hand.
    """
    recipe_path = Path(model_dir) / RECIPE
    recipe = (read_yaml(recipe_path) or {}) if recipe_path.is_file() else {}
    if recipe.get("dataset_name") in BUILT_IN_DATASETS:
        test = BUILT_IN_DATASETS[recipe["dataset_name"]]()["test"]
        names = test.features["label"].names
        rows = first_of_each_class(test["label"], len(names))
        images = [(names[test[row]["label"]], test[row]["image"]) for row in rows]
    elif recipe.get("test_dir") and Path(recipe["test_dir"]).is_dir():
        images = _first_file_of_each_class(Path(recipe["test_dir"]))
    else:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (label, value) in enumerate(images[:count]):
        try:
            image = decode_image(value)
        except Exception as error:  # PIL raises many types for broken files; an example is not worth stopping for
            logger.warning(f"Leaving out a test image of {label}, which does not decode: {error}")
            continue
        path = folder / f"{label}_{index}.png"
        image.save(path)
        written.append(path)
    return written


def _first_file_of_each_class(test_dir: Path) -> list[tuple[str, dict]]:
    """(class folder's name, undecoded image value) of each class folder's first image file, by folder name."""
    found = []
    for class_dir in sorted(path for path in test_dir.iterdir() if path.is_dir()):
        files = sorted(path for path in class_dir.iterdir() if path.suffix.lower() in _IMAGE_SUFFIXES)
        if files:
            found.append((class_dir.name, {"path": str(files[0]), "bytes": None}))
    return found
