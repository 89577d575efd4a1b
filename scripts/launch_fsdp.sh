#!/usr/bin/env bash
# Trains a recipe with FSDP2 (full sharding, one FSDP unit per ViTLayer) on the 8 GPUs of one machine
# (recipes/accelerate/fsdp.yaml, bf16). Run from the repository root:
#   scripts/launch_fsdp.sh [RECIPE.yaml] [--field value ...]
set -euo pipefail
recipe=${1:-recipes/full_finetune/vit_base_in21k_cifar10.yaml}
shift || true
exec accelerate launch --config_file recipes/accelerate/fsdp.yaml -m vit_ft.cli train "$recipe" "$@"
