"""`vit-ft push --with_onnx`: the repo gets onnx/ beside the model, and the card says how to run it."""

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.cli import main
from vit_ft.export.runtime import OnnxClassifier
from vit_ft.hub.card import transformers_js_usage

ROOT = Path(__file__).resolve().parents[2]


def test_push_with_onnx_adds_the_onnx_folder_and_its_card_section(fake_hub, tmp_path):
    torch.manual_seed(0)
    model_dir = tmp_path / "tiny"
    ViTForImageClassification(tiny_config()).save_pretrained(model_dir)
    default_processor(32).save_pretrained(model_dir)
    main(["push", "--model", str(model_dir), "--repo_id", "tiny", "--with_onnx"])
    repo = fake_hub.files("tester/tiny")
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "config.json", "model.safetensors"} <= {
        str(path.relative_to(repo)) for path in repo.rglob("*") if path.is_file()
    }
    assert json.loads((repo / "config.json").read_text())["model_type"] == "vit_ft"
    OnnxClassifier(repo, "model_quantized.onnx")  # the pushed repo serves in ONNX Runtime as it is
    card = (repo / "README.md").read_text()
    assert "## ONNX" in card and "`onnx/model.onnx`, `onnx/model_quantized.onnx`" in card
    assert 'onnxruntime.InferenceSession(hf_hub_download("tester/tiny", "onnx/model_quantized.onnx"))' in card
    assert 'pipeline("image-classification", "tester/tiny", { dtype: "q8", config })' in card


def test_the_deployment_guide_shows_the_cards_transformers_js_snippet():
    assert transformers_js_usage("my-user/vit-digits", "q8") in (ROOT / "docs" / "deployment.md").read_text()


def test_push_with_onnx_refuses_an_adapter_before_any_request(fake_hub, tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(SystemExit, match="is a LoRA adapter: --with_onnx exports models. Merge it first"):
        main(["push", "--model", str(tmp_path / "adapter"), "--repo_id", "tiny", "--with_onnx"])
    assert not fake_hub.repos
