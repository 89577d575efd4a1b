#!/usr/bin/env bash
# Trains a recipe with data parallelism (DDP) on the 8 GPUs of one machine (recipes/accelerate/multi_gpu.yaml,
# bf16). Run from the repository root:
#   scripts/launch_multi_gpu.sh [RECIPE.yaml] [--field value ...]
# Another GPU count: NUM_PROCESSES=4 scripts/launch_multi_gpu.sh ... (the global batch is per-device x processes).
set -euo pipefail
recipe=${1:-recipes/full_finetune/vit_base_in21k_cifar10.yaml}
shift || true
exec accelerate launch --config_file recipes/accelerate/multi_gpu.yaml --num_processes "${NUM_PROCESSES:-8}" \
    -m vit_ft.cli train "$recipe" "$@"
