"""Training speed of vit_ft's two ways to project queries, keys and values, against timm's fused `qkv`.

vit_ft keeps `q_proj`, `k_proj` and `v_proj` as separate modules (peft targets them by name). In training it runs them
as one matrix product over their weights stacked on the fly (`stacked`) unless the public switch
`ViTAttention.stack_qkv_in_training` is off on the modules (`separate`). This script times training steps (forward,
backward, no optimizer) with each, set on two instances of the same model (the library's `build_model` of the
preset), interleaved with timm's VisionTransformer of the same architecture, and prints ratios.

    python scripts/benchmark_qkv_projection.py --device cuda --dtype bfloat16 --batch-sizes 128,256
    python scripts/benchmark_qkv_projection.py --device cpu --batch-sizes 8,32 --models vit_tiny_patch16_224

Quick smoke test: `--device cpu --models vit_tiny_patch16_224 --batch-sizes 2 --repeats 1 --steps 1`.
"""

import argparse
import statistics
import time

import timm
import torch
from benchmark_common import autocast, preset_model

from vit_ft import ViTForImageClassification
from vit_ft.model.modeling_vit_ft import ViTAttention

NUM_LABELS = 1000  # timm's default head, as the timm model has


def _vit_ft(name: str, stacked: bool, device: str) -> ViTForImageClassification:
    model = preset_model(name, NUM_LABELS)[0].to(device).train()
    for module in model.modules():
        if isinstance(module, ViTAttention):
            module.stack_qkv_in_training = stacked
    return model


def _seconds_per_step(model, pixels, steps: int, precision, device: str) -> float:
    """Runs `steps` training forwards and backwards of `model` and returns the seconds each took."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with precision:
            output = model(pixels)
        logits = output.logits if hasattr(output, "logits") else output
        logits.float().mean().backward()
        model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="vit_small_patch16_224,vit_base_patch16_224")
    parser.add_argument("--batch-sizes", default="128,256")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    precision = autocast(torch.device(args.device), args.dtype == "bfloat16")
    print(f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}, training steps")
    print("| model | batch | separate | stacked | timm | stacked/separate | separate/timm | stacked/timm |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        runs = {
            "separate": _vit_ft(name, stacked=False, device=args.device),
            "stacked": _vit_ft(name, stacked=True, device=args.device),
            "timm": timm.create_model(name, pretrained=False).to(args.device).train(),
        }
        runs["stacked"].load_state_dict(runs["separate"].state_dict())
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            pixels = torch.randn(batch, 3, 224, 224, device=args.device)
            times = {key: [] for key in runs}
            for _ in range(2):  # warm-up
                for model in runs.values():
                    _seconds_per_step(model, pixels, args.steps, precision, args.device)
            for repeat in range(args.repeats):
                order = list(runs)
                order = order[repeat % len(order) :] + order[: repeat % len(order)]  # rotate to spread drift
                for key in order:
                    times[key].append(_seconds_per_step(runs[key], pixels, args.steps, precision, args.device))
            rate = {key: batch / statistics.median(values) for key, values in times.items()}
            print(f"| {name} | {batch} | {rate['separate']:.1f} | {rate['stacked']:.1f} | {rate['timm']:.1f} | "
                  f"{rate['stacked'] / rate['separate']:.3f} | {rate['separate'] / rate['timm']:.3f} | "
                  f"{rate['stacked'] / rate['timm']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
