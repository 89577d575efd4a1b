"""Reading a checkpoint's files from a folder or the Hub cache: a file it lacks is None, a shard it lacks is named."""

import json

import pytest
import torch
from huggingface_hub import constants

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.reading import read_json, read_weights

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_hub_repo_is_read_from_the_cache_offline(tmp_path, monkeypatch):
    # The Hub cache's layout, as a download leaves it: the branch names a commit, whose snapshot holds the files.
    repo = tmp_path / "cache" / "models--tester--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    model = ViTForImageClassification(tiny_config())
    model.save_pretrained(repo / "snapshots" / COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_kwargs = {"cache_dir": str(tmp_path / "cache"), "revision": "main", "token": None}
    assert read_json("tester/tiny", "config.json", hub_kwargs)["hidden_size"] == 32
    assert read_json("tester/tiny", "preprocessor_config.json", hub_kwargs) is None
    weights = read_weights("tester/tiny", hub_kwargs)
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())


def test_a_shard_the_index_lists_but_the_folder_lacks_is_named(tmp_path):
    model = ViTForImageClassification(tiny_config())
    model.save_pretrained(tmp_path, max_shard_size="50KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    assert read_weights(str(tmp_path), {}).keys() == model.state_dict().keys()
    (tmp_path / shards[-1]).unlink()
    with pytest.raises(OSError) as error:
        read_weights(str(tmp_path), {})
    assert str(error.value).startswith(f"{tmp_path} has no {shards[-1]}, which its model.safetensors.index.json lists")
