"""Saves a vit_ft model wrapped by FSDP2's fully_shard on one gloo process on CPU (see test_saving_and_remote_code)."""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
dist.init_process_group("gloo", rank=0, world_size=1)
torch.manual_seed(0)
model = ViTForImageClassification(tiny_config())
mesh = init_device_mesh("cpu", (1,))
for layer in model.vit.layers:
    fully_shard(layer, mesh=mesh)
fully_shard(model, mesh=mesh)
assert type(model).__name__ == "FSDPViTForImageClassification", type(model)
# As accelerate does for FSDP2 with a full state dict: gather the shards, then save.
full = {key: value.full_tensor() for key, value in model.state_dict().items()}
model.save_pretrained(sys.argv[1], state_dict=full)
dist.destroy_process_group()
