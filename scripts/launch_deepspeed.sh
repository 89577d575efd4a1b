#!/usr/bin/env bash
# Trains a recipe with DeepSpeed ZeRO stage 2 on the 8 GPUs of one machine (recipes/accelerate/deepspeed_zero2.yaml,
# bf16). Needs `pip install deepspeed`. Run from the repository root:
#   scripts/launch_deepspeed.sh [RECIPE.yaml] [--field value ...]
set -euo pipefail
recipe=${1:-recipes/full_finetune/vit_base_in21k_cifar10.yaml}
shift || true
exec accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml -m vit_ft.cli train "$recipe" "$@"
