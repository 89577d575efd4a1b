#!/usr/bin/env bash
# Trains a recipe with data parallelism over 2 machines x 8 GPUs (recipes/accelerate/multi_node.yaml, bf16). Run it
# from the repository root on every machine, the main one first, each with its rank and the main machine's address:
#   MACHINE_RANK=0 MAIN_PROCESS_IP=10.1.2.3 scripts/launch_multi_node.sh [RECIPE.yaml] [--field value ...]  # main
#   MACHINE_RANK=1 MAIN_PROCESS_IP=10.1.2.3 scripts/launch_multi_node.sh [RECIPE.yaml] [--field value ...]  # other
# The cifar10 recipe's batch of 512 over 16 GPUs: --per_device_train_batch_size 32. output_dir must be on a shared
# file system, or local to each machine with --save_on_each_node true.
set -euo pipefail
: "${MACHINE_RANK:?set MACHINE_RANK: 0 on the main machine, 1 on the other}"
: "${MAIN_PROCESS_IP:?set MAIN_PROCESS_IP: the address of the machine of rank 0}"
recipe=${1:-recipes/full_finetune/vit_base_in21k_cifar10.yaml}
shift || true
exec accelerate launch --config_file recipes/accelerate/multi_node.yaml --machine_rank "$MACHINE_RANK" \
    --main_process_ip "$MAIN_PROCESS_IP" --main_process_port "${MAIN_PROCESS_PORT:-29500}" \
    -m vit_ft.cli train "$recipe" "$@"
