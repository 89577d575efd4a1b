"""Saves a vit_ft model wrapped by FSDP2's fully_shard through ViTTrainer.save_model, as a run with accelerate's FSDP2
plugin does, on one gloo process on CPU (see test_trainer_saving)."""

import os
import sys

import torch
from accelerate import FullyShardedDataParallelPlugin
from accelerate.utils import DistributedType
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from transformers import TrainingArguments

from tests.conftest import tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.training.trainer import ViTTrainer

output_dir, port = sys.argv[1:]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
args = TrainingArguments(output_dir=output_dir, use_cpu=True, report_to=[])
torch.manual_seed(0)
model = ViTForImageClassification(tiny_config())
mesh = init_device_mesh("cpu", (1,))
for layer in model.vit.layers:
    fully_shard(layer, mesh=mesh)
fully_shard(model, mesh=mesh)
assert type(model).__name__ == "FSDPViTForImageClassification", type(model)
trainer = ViTTrainer(model=model, args=args)
# accelerate turns its FSDP plugin on for GPU runs only; here the state is set as a GPU run with FSDP2 has it, so that
# save_model gathers the full state dict as in training (accelerator.get_state_dict).
trainer.accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin(
    fsdp_version=2, state_dict_type="FULL_STATE_DICT"
)
trainer.accelerator.state.distributed_type = DistributedType.FSDP
trainer.is_fsdp_enabled = True
trainer.save_model(output_dir)
assert type(model).__name__ == "FSDPViTForImageClassification", type(model)
