"""ViTTrainer.save_model writes vit_ft's remote code and auto_map for a model FSDP2 has wrapped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoModelForImageClassification

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification


def test_fsdp2_wrapped_model_saves_vit_ft_remote_code(tmp_path):
    probe = Path(__file__).resolve().parent / "fsdp2_save_probe.py"
    env = {**os.environ, "PYTHONPATH": str(probe.parents[2])}
    subprocess.run([sys.executable, str(probe), str(tmp_path / "fsdp"), "29561"], check=True, env=env, timeout=300)
    config = json.loads((tmp_path / "fsdp" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_vit_ft.ViTConfig",
        "AutoModel": "modeling_vit_ft.ViTModel",
        "AutoModelForImageClassification": "modeling_vit_ft.ViTForImageClassification",
    }
    files = set(os.listdir(tmp_path / "fsdp"))
    assert {"modeling_vit_ft.py", "configuration_vit_ft.py"} <= files
    assert not [name for name in files if name.startswith("_fsdp")]
    torch.manual_seed(0)
    expected = ViTForImageClassification(tiny_config()).state_dict()
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "fsdp").state_dict()
    for key in expected:
        torch.testing.assert_close(loaded[key], expected[key])
