#!/usr/bin/env bash
# The GPU run behind docs/benchmarks.md's GPU rows: ViT-B/16 (and ViT-S/16) in bf16 at batch 256 against timm and
# transformers, eager (with the timm control) and compiled, with MFU; `vit-ft train`'s pipeline end to end against
# the model alone; and recipes/full_finetune/vit_base_in21k_beans.yaml for its 5 epochs on beans-shaped stand-ins
# (scripts/beans_shaped_data.py), where the Hub cannot be reached. About 8 minutes on an H200.
# Run from the repository root. Python packages the machine lacks (datasets, evaluate, httpx2 and what they need)
# go as wheels in .whl/ (`pip download -d .whl datasets evaluate httpx2` on a machine with the Hub). Everything is
# logged to $OUT/log.txt.
set -uo pipefail
OUT=${OUT:-/tmp/vit_ft_device}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
step() { echo "=== $* ($(date +%T))" | tee -a "$LOG"; }

step versions
python3 -c "import torch, transformers, timm, datasets, vit_ft; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'timm', timm.__version__, 'datasets', datasets.__version__, torch.cuda.get_device_name())" \
    2>&1 | tee -a "$LOG"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
nproc | tee -a "$LOG"

common=(--device cuda --dtype bfloat16 --repeats 5 --steps 5 --warmup 3 --batch-sizes 256)
step "model, eager"
timeout 150 python3 scripts/benchmark_model.py "${common[@]}" --control \
    --models vit_small_patch16_224,vit_base_patch16_224 --output "$OUT/model_eager.json" 2>&1 | tee -a "$LOG"
step "model, compiled"
timeout 240 python3 scripts/benchmark_model.py "${common[@]}" --compile --models vit_base_patch16_224 \
    --output "$OUT/model_compile.json" 2>&1 | tee -a "$LOG"
step "train pipeline"
timeout 120 python3 scripts/benchmark_train.py --device cuda --bf16 --preset vit_base_patch16_224 --batch-size 256 \
    --workers 14 --output "$OUT/train.json" 2>&1 | tee -a "$LOG"
step "beans recipe"
data=/tmp/beans_shaped
python3 scripts/beans_shaped_data.py --output "$data" 2>&1 | tee -a "$LOG"
timeout 200 python3 -m vit_ft.cli train recipes/full_finetune/vit_base_in21k_beans.yaml \
    --model_name_or_path "$data/vit-base" --dataset_name "" --train_dir "$data/train" \
    --validation_dir "$data/validation" --test_dir "$data/test" --label_column_name label \
    --output_dir /tmp/beans_run 2>&1 | grep -v "it/s\]" | tail -40 | tee -a "$LOG"
cp /tmp/beans_run/all_results.json "$OUT/beans_results.json" 2>/dev/null
step done
