import pytest
import torch

from vit_ft import ViTConfig

TINY = dict(
    image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
)


def tiny_config(**overrides) -> ViTConfig:
    """A few-thousand-parameter config: shapes and numbers check on CPU in milliseconds."""
    return ViTConfig(**{**TINY, "num_labels": 5, **overrides})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def pixel_values() -> torch.Tensor:
    return torch.randn(3, 3, TINY["image_size"], TINY["image_size"])
