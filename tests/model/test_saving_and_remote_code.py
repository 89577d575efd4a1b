"""Saved vit_ft models: round trip, Auto classes, remote code without vit_ft installed, the pipeline."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    ViTImageProcessor,
    pipeline,
)

from tests.conftest import run_without_vit_ft, tiny_config
from vit_ft import ViTForImageClassification, ViTModel

# Runs where vit_ft cannot be imported (see conftest.run_without_vit_ft).
_REMOTE_CHILD = """
import sys

import torch
from transformers import AutoModel, AutoModelForImageClassification
model_dir, pixels, out = sys.argv[1:]
model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
encoder = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert type(encoder).__name__ == "ViTModel", type(encoder)
assert "vit_ft" not in sys.modules
with torch.no_grad():
    torch.save((model(torch.load(pixels)).logits, encoder(torch.load(pixels)).last_hidden_state), out)
"""


# A fresh interpreter that imports vit_ft and nothing of it by name: the Auto classes find vit_ft's models, and the
# model package loads only when a checkpoint asks for it.
_AUTO_CHILD = """
import json
import sys

import torch
import vit_ft
from transformers import CONFIG_MAPPING, AutoConfig, AutoModelForImageClassification, pipeline
from PIL import Image
model_dir, pixels, out, image = sys.argv[1:]
loaded_at_import = "vit_ft.model" in sys.modules
assert "vit_ft" in CONFIG_MAPPING
model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
with torch.no_grad():
    torch.save(model(torch.load(pixels)).logits, out)
config = AutoConfig.for_model("vit_ft", hidden_size=48)
top = pipeline("image-classification", model=model_dir)(Image.open(image), top_k=1)[0]
print(json.dumps({"loaded_at_import": loaded_at_import, "model": type(model).__module__,
                  "config": [type(config).__module__, config.hidden_size], "label": top["label"]}))
"""


def _save(tmp_path, **overrides):
    model = ViTForImageClassification(tiny_config(id2label={i: f"digit_{i}" for i in range(5)}, **overrides)).eval()
    model.save_pretrained(tmp_path / "model")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


def test_round_trip_and_auto_classes(tmp_path, pixel_values):
    model, path = _save(tmp_path, use_distillation_token=True, num_register_tokens=2, drop_path_rate=0.1)
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "vit_ft"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_vit_ft.ViTConfig",
        "AutoModel": "modeling_vit_ft.ViTModel",
        "AutoModelForImageClassification": "modeling_vit_ft.ViTForImageClassification",
    }
    loaded = AutoModelForImageClassification.from_pretrained(path).eval()
    assert type(loaded) is ViTForImageClassification
    torch.testing.assert_close(loaded(pixel_values).logits, model(pixel_values).logits, rtol=0, atol=0)
    assert type(AutoConfig.from_pretrained(path)).__module__ == "vit_ft.model.configuration_vit_ft"
    base = AutoModel.from_pretrained(path).eval()
    assert type(base) is ViTModel
    torch.testing.assert_close(base(pixel_values).last_hidden_state, model.vit(pixel_values).last_hidden_state)
    assert type(AutoImageProcessor.from_pretrained(path)).__name__ == "ViTImageProcessor"


def test_remote_code_without_vit_ft_gives_identical_logits(tmp_path, pixel_values):
    model, path = _save(tmp_path, num_register_tokens=1, position_embedding_type="sincos", pooling="mean")
    assert {"modeling_vit_ft.py", "configuration_vit_ft.py"} <= set(os.listdir(path))
    assert "state_dict_conversion.py" not in os.listdir(path)  # conversion lives in vit_ft.checkpoints
    torch.save(pixel_values, tmp_path / "pixels.pt")
    run_without_vit_ft(
        _REMOTE_CHILD, str(path), str(tmp_path / "pixels.pt"), str(tmp_path / "out.pt"), workdir=tmp_path
    )
    logits, hidden = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        torch.testing.assert_close(logits, model(pixel_values).logits, rtol=0, atol=0)
        torch.testing.assert_close(hidden, model.vit(pixel_values).last_hidden_state, rtol=0, atol=0)


def test_pipeline_returns_the_labels_of_id2label(tmp_path):
    model, path = _save(tmp_path)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    classifier = pipeline("image-classification", model=str(path))
    predictions = classifier(image, top_k=5)
    assert {p["label"] for p in predictions} == {f"digit_{i}" for i in range(5)}
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-5)
    pixels = classifier.image_processor(image, return_tensors="pt").pixel_values
    with torch.no_grad():
        best = model(pixels).logits.argmax(-1).item()
    assert predictions[0]["label"] == f"digit_{best}"


def test_import_vit_ft_registers_the_auto_classes(tmp_path, pixel_values):
    model, path = _save(tmp_path)
    torch.save(pixel_values, tmp_path / "pixels.pt")
    Image.fromarray(np.full((32, 32, 3), 128, dtype=np.uint8)).save(tmp_path / "grey.png")
    args = [str(path), str(tmp_path / "pixels.pt"), str(tmp_path / "logits.pt"), str(tmp_path / "grey.png")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", _AUTO_CHILD, *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["loaded_at_import"] is False
    assert report["model"] == "vit_ft.model.modeling_vit_ft"  # vit_ft's own class, not remote code
    assert report["config"] == ["vit_ft.model.configuration_vit_ft", 48]
    assert report["label"].startswith("digit_")
    with torch.no_grad():
        expected = model(pixel_values).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=0, atol=0)
