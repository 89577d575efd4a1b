import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vit_ft import ViTConfig

TINY = dict(
    image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
)

# Put before the code of a fresh interpreter: importing vit_ft then fails, as on a machine without vit-ft installed.
_BLOCK_VIT_FT = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "vit_ft" or name.startswith("vit_ft."):
                raise ImportError("vit_ft is blocked in this test")
    sys.meta_path.insert(0, Block())
    """
)


def tiny_config(**overrides) -> ViTConfig:
    """A few-thousand-parameter config: shapes and numbers check on CPU in milliseconds."""
    return ViTConfig(**{**TINY, "num_labels": 5, **overrides})


def run_without_vit_ft(code: str, *args: str, workdir: Path) -> None:
    """
    Runs `code` (with `args` in sys.argv[1:]) in a fresh, offline interpreter where vit_ft cannot be imported, in
    `workdir`, which also holds the remote code transformers copies. Raises when the code fails.
    """
    env = {**os.environ, "HF_MODULES_CACHE": str(workdir / "modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    program = _BLOCK_VIT_FT + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", program, *args], check=True, cwd=workdir, env=env)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def pixel_values() -> torch.Tensor:
    return torch.randn(3, 3, TINY["image_size"], TINY["image_size"])
