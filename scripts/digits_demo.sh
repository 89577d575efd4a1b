#!/usr/bin/env bash
# The digits demos, chained on CPU (15.5 minutes on two cores), from the repository root:
#   scripts/digits_demo.sh
# 1. full fine-tuning: the digits model (recipes/full_finetune/digits.yaml), the base and teacher of what follows;
# 2. LoRA: that model adapted to low-quality images (recipes/lora/digits_low_quality.yaml), against the base as it
#    is and against full fine-tuning on the same data (recipes/full_finetune/digits_low_quality.yaml);
# 3. distillation into a student of a fifth of the FLOPs (recipes/distill/digits_tiny.yaml): alone, soft, hard and
#    with a distillation token.
# A step whose output directory already holds all_results.json is not run again; delete it to rerun. A step that was
# stopped midway starts again from scratch (--overwrite_output_dir true). The table at the end is also written to
# outputs/digits_demo.md.
set -euo pipefail
export TQDM_DISABLE=1

train() {  # train OUTPUT_DIR RECIPE [--field value ...]
    local output_dir=$1 recipe=$2
    shift 2
    if [[ -f "$output_dir/all_results.json" ]]; then
        echo "== $output_dir: already trained, kept"
        return
    fi
    echo "== $output_dir: vit-ft train $recipe $*"
    vit-ft train "$recipe" --output_dir "$output_dir" --overwrite_output_dir true "$@"
}

train outputs/digits recipes/full_finetune/digits.yaml

low_quality=(--dataset_name digits --train_val_split 0.1 --image_corruptions low_resolution,gaussian_blur,gaussian_noise
             --corruption_severity 1 --corruption_seed 0)
vit-ft evaluate --model outputs/digits "${low_quality[@]}" --output outputs/digits/eval_low_quality.json > /dev/null
train outputs/digits_lora_low_quality recipes/lora/digits_low_quality.yaml
train outputs/digits_full_low_quality recipes/full_finetune/digits_low_quality.yaml

distill=recipes/distill/digits_tiny.yaml
token_student=$(python -c "import json, yaml; o = yaml.safe_load(open('$distill'))['model_overrides']; \
o['use_distillation_token'] = True; print(json.dumps(o))")
train outputs/digits_tiny_alone "$distill" --teacher_model_name_or_path None
train outputs/digits_tiny_soft "$distill" --distillation_type soft
train outputs/digits_tiny_hard "$distill"
train outputs/digits_tiny_token "$distill" --model_overrides "$token_student"

python - <<'PYTHON' | tee outputs/digits_demo.md
import json

def results(name):
    return json.load(open(f"outputs/{name}/all_results.json"))

base = json.load(open("outputs/digits/eval_low_quality.json"))["clean"]["accuracy"] * 100
lora, full = results("digits_lora_low_quality"), results("digits_full_low_quality")
gain_lora, gain_full = lora["test_accuracy"] * 100 - base, full["test_accuracy"] * 100 - base
print("| LoRA on low-quality digits (test) | accuracy | trainable parameters |")
print("|---|---|---|")
print(f"| base (outputs/digits), as is | {base:.2f}% | 0 |")
# Against the model's own parameters: train_total_parameters also counts the adapters'.
share = 100 * lora["train_trainable_parameters"] / full["train_total_parameters"]
print(f"| LoRA | {lora['test_accuracy'] * 100:.2f}% | {lora['train_trainable_parameters']:,} ({share:.1f}%) |")
print(f"| full fine-tuning | {full['test_accuracy'] * 100:.2f}% | {full['train_trainable_parameters']:,} (100%) |")
print(f"\nLoRA recovers {100 * gain_lora / gain_full:.1f}% of full fine-tuning's gain ({gain_lora:+.2f} against "
      f"{gain_full:+.2f} points).\n")
print("| Distillation on digits (test) | accuracy | parameters |")
print("|---|---|---|")
runs = [("digits", "teacher (outputs/digits)"), ("digits_tiny_alone", "student alone"),
        ("digits_tiny_soft", "soft distillation"), ("digits_tiny_hard", "hard distillation"),
        ("digits_tiny_token", "hard, distillation token")]
for name, label in runs:
    run = results(name)
    print(f"| {label} | {run['test_accuracy'] * 100:.2f}% | {run['train_total_parameters']:,} |")
PYTHON
