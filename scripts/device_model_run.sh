#!/usr/bin/env bash
# The GPU run behind docs/benchmarks.md (model speed): the machine's versions, the CPU test suite against its
# transformers (the oldest we support, 5.17), then scripts/benchmark_model.py in bf16, eager (with the timm control)
# and compiled. About 10 minutes with the machine's start.
# Run from the repository root; results go to $OUT (default /tmp/vit_ft_device).
set -uo pipefail
OUT=${OUT:-/tmp/vit_ft_device}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, timm; print('torch', torch.__version__, 'transformers', transformers.__version__,
'timm', timm.__version__, torch.cuda.get_device_name())" 2>&1 | tee "$OUT/versions.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee -a "$OUT/versions.txt"
timeout 90 python3 -m pytest -q -p no:cacheprovider -m "not slow" tests/model/test_modeling.py \
    tests/checkpoints/test_transformers_conversion.py tests/model/test_saving_and_remote_code.py 2>&1 \
    | tail -25 | tee "$OUT/tests.txt"
common=(--device cuda --dtype bfloat16 --repeats 5 --steps 5 --warmup 3)
timeout 150 python3 scripts/benchmark_model.py "${common[@]}" --control \
    --models vit_small_patch16_224,vit_base_patch16_224 --batch-sizes 128,256 --output "$OUT/gpu_eager.json" 2>&1 \
    | tee "$OUT/gpu_eager.txt"
for model in vit_small_patch16_224 vit_base_patch16_224; do
    timeout 150 python3 scripts/benchmark_model.py "${common[@]}" --compile --models "$model" --batch-sizes 128,256 \
        --output "$OUT/gpu_compile_$model.json" 2>&1 | tee "$OUT/gpu_compile_$model.txt"
done
