#!/usr/bin/env bash
# Trains a recipe on one GPU (recipes/accelerate/single_gpu.yaml, bf16). Run from the repository root:
#   scripts/launch_single_gpu.sh [RECIPE.yaml] [--field value ...]
# The default recipe, cifar10, is set for a batch of 64 x 8 GPUs: keep its batch of 512 on one GPU with
#   scripts/launch_single_gpu.sh recipes/full_finetune/vit_base_in21k_cifar10.yaml --gradient_accumulation_steps 8
set -euo pipefail
recipe=${1:-recipes/full_finetune/vit_base_in21k_cifar10.yaml}
shift || true
exec accelerate launch --config_file recipes/accelerate/single_gpu.yaml -m vit_ft.cli train "$recipe" "$@"
