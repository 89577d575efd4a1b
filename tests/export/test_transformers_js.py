"""The model card's transformers.js snippet, run as written on an export, and the browser's runtime (onnxruntime-web,
WebAssembly) on its files: both give what vit-ft's ONNX Runtime serving gives.

The JavaScript packages are the versions pinned in transformers_js/package-lock.json, installed with npm into a
temporary folder (npm's registry must answer). Without Node.js and npm on PATH the module is skipped.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.evaluation.predict import predict_images
from vit_ft.export.onnx_export import export_onnx
from vit_ft.export.runtime import OnnxClassifier
from vit_ft.hub.card import transformers_js_usage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("node") and shutil.which("npm")), reason="needs Node.js and npm on PATH"),
]

PACKAGES = Path(__file__).parent / "transformers_js"
REPO_ID = "tester/tiny"  # the export lies at models/tester/tiny, where transformers.js looks for this id offline
IMAGE_SIZE = 16  # the images are made at the model's size, so that no resize library stands between the two sides
LABELS = {i: f"class_{i}" for i in range(5)}


@pytest.fixture(scope="module")
def js_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("js")
    for name in ("package.json", "package-lock.json", "wasm_logits.mjs"):
        shutil.copy(PACKAGES / name, folder / name)
    # --ignore-scripts: onnxruntime-node's install script fetches CUDA libraries; its CPU build ships in the package.
    command = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=600)
    return folder


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("model")
    config = tiny_config(
        image_size=IMAGE_SIZE, patch_size=4, num_labels=len(LABELS), id2label=LABELS, initializer_range=0.5
    )
    ViTForImageClassification(config).save_pretrained(model_dir)
    default_processor(IMAGE_SIZE).save_pretrained(model_dir)
    models = tmp_path_factory.mktemp("models")
    return export_onnx(str(model_dir), str(models / REPO_ID), quantize="int8")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("image")
    pixels = np.random.default_rng(0).integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "image.png")  # the name the snippet classifies
    return folder


def _run_card_snippet(js_folder: Path, export_dir: Path, image_folder: Path, dtype: str) -> dict[str, float]:
    """The card's snippet for `dtype`, offline, on image.png: transformers.js's predictions as {label: score}."""
    script = js_folder / f"card_{dtype}.mjs"
    models = json.dumps(f"{export_dir.parents[1]}/")
    offline = 'import { env } from "@huggingface/transformers";\nenv.allowRemoteModels = false;\n'
    offline += f"env.localModelPath = {models};\n"
    printed = "\nconsole.log(JSON.stringify(predictions));\n"
    script.write_text(offline + transformers_js_usage(REPO_ID, dtype) + printed)
    result = subprocess.run(["node", str(script)], cwd=image_folder, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {item["label"]: item["score"] for item in json.loads(result.stdout.strip().splitlines()[-1])}


def _served_scores(export_dir: Path, image_folder: Path, onnx_file: str) -> dict[str, float]:
    """vit-ft's ONNX Runtime serving of image.png from `onnx_file`, as {label: score}."""
    (served,) = predict_images(str(export_dir), [str(image_folder / "image.png")], top_k=5, onnx_file=onnx_file)
    return {item["label"]: item["score"] for item in served["predictions"]}


def _largest_gap(scores: dict[str, float], other: dict[str, float]) -> float:
    return max(abs(scores[label] - other[label]) for label in other)


@pytest.mark.parametrize(
    ("dtype", "onnx_file", "other_file", "tolerance"),
    [("fp32", "model.onnx", "model_quantized.onnx", 1e-5), ("q8", "model_quantized.onnx", "model.onnx", 1e-5)],
)
def test_the_cards_transformers_js_snippet_gives_vit_fts_predictions(
    js_folder, export_dir, image_folder, dtype, onnx_file, other_file, tolerance
):
    scores = _run_card_snippet(js_folder, export_dir, image_folder, dtype)
    expected = _served_scores(export_dir, image_folder, onnx_file)
    assert scores.keys() == expected.keys() == set(LABELS.values())
    assert _largest_gap(scores, expected) < tolerance
    assert max(scores, key=scores.get) == max(expected, key=expected.get)
    # The two files' scores differ by far more than the tolerance, so the match says which file transformers.js ran.
    assert _largest_gap(scores, _served_scores(export_dir, image_folder, other_file)) > 10 * tolerance


@pytest.mark.parametrize(("onnx_file", "tolerance"), [("model.onnx", 1e-4), ("model_quantized.onnx", 2e-2)])
def test_the_browsers_runtime_runs_both_files_at_any_batch(js_folder, export_dir, tmp_path, onnx_file, tolerance):
    classifier = OnnxClassifier(export_dir, onnx_file)
    for batch in (1, 3):
        pixels = np.random.default_rng(batch).standard_normal((batch, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        (tmp_path / "pixels.bin").write_bytes(pixels.tobytes())
        command = [
            "node",
            "wasm_logits.mjs",
            str(export_dir / "onnx" / onnx_file),
            str(tmp_path / "pixels.bin"),
            str(batch),
            str(IMAGE_SIZE),
        ]
        result = subprocess.run(command, cwd=js_folder, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        output = json.loads(result.stdout)
        logits = np.array(output["data"], dtype=np.float32).reshape(output["dims"])
        expected = classifier.logits(torch.from_numpy(pixels)).numpy()
        assert logits.shape == (batch, len(LABELS))
        # int8: the WebAssembly build has its own integer kernels, so rounding differs by a few quantization steps.
        assert np.abs(logits - expected).max() < tolerance
