"""A model saved by vit_ft before the model file became plain transformers code (commit 44a9adb, with its own copy of
the old modeling code and `state_dict_conversion.py`) still loads: with vit_ft, and as remote code without it."""

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from tests.conftest import run_without_vit_ft
from vit_ft import ViTForImageClassification

# Written by the command in tests/fixtures/README.md with the code of 44a9adb: a seeded tiny classifier (registers,
# LayerScale) and its logits on fixed pixels.
SAVED = Path(__file__).resolve().parents[1] / "fixtures" / "vit_ft_saved_at_44a9adb"

_REMOTE_CHILD = """
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification
model_dir, out = sys.argv[1:]
model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert "vit_ft" not in sys.modules
with torch.no_grad():
    torch.save(model(load_file(f"{model_dir}/expected_logits.safetensors")["pixel_values"]).logits, out)
"""


def test_loads_with_vit_ft_and_gives_the_saved_logits():
    expected = load_file(SAVED / "expected_logits.safetensors")
    for model in (
        ViTForImageClassification.from_pretrained(SAVED),
        AutoModelForImageClassification.from_pretrained(SAVED),
    ):
        assert type(model) is ViTForImageClassification
        with torch.no_grad():
            logits = model.eval()(expected["pixel_values"]).logits
        torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=1e-5)


def test_loads_as_remote_code_without_vit_ft_and_gives_the_saved_logits(tmp_path):
    run_without_vit_ft(_REMOTE_CHILD, str(SAVED), str(tmp_path / "logits.pt"), workdir=tmp_path)
    expected = load_file(SAVED / "expected_logits.safetensors")["logits"]
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=0, atol=1e-5)
