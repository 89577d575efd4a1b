"""Inference speed of vit_ft's two ways to project queries, keys and values, against timm's fused `qkv`.

vit_ft keeps `q_proj`, `k_proj` and `v_proj` as separate modules (peft targets them by name). It can run them as
three matrix products (`separate`) or as one over their weights stacked on the fly (`stacked`). This script times
inference with each, interleaved with timm's VisionTransformer of the same architecture, and prints ratios.

    python scripts/benchmark_qkv_projection.py --device cuda --dtype bfloat16 --batch-sizes 128,256
    python scripts/benchmark_qkv_projection.py --device cpu --batch-sizes 8,32 --models vit_tiny_patch16_224
"""

import argparse
import contextlib
import statistics
import time

import timm
import torch
from torch import nn

from vit_ft import ViTConfig, ViTForImageClassification
from vit_ft.model.modeling_vit_ft import ViTAttention


def _separate(self: ViTAttention, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)


def _stacked(self: ViTAttention, hidden_states: torch.Tensor) -> tuple[torch.Tensor, ...]:
    projections = (self.q_proj, self.k_proj, self.v_proj)
    weight = torch.cat([p.weight for p in projections])
    bias = torch.cat([p.bias for p in projections])
    return nn.functional.linear(hidden_states, weight, bias).chunk(3, dim=-1)


def _seconds_per_step(model, projection, pixels, steps: int, autocast, device: str) -> float:
    """Runs `steps` inference forwards with the given q/k/v projection (None for timm) and returns seconds each."""
    if projection is not None:
        ViTAttention._project_qkv = projection
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for _ in range(steps):
            model(pixels)
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
    autocast = (
        torch.autocast(args.device, dtype=torch.bfloat16) if args.dtype == "bfloat16" else contextlib.nullcontext()
    )
    original = ViTAttention._project_qkv
    print(f"torch {torch.__version__}, device {args.device}, dtype {args.dtype}")
    print("| model | batch | current | separate | stacked | timm | current/timm | separate/timm | stacked/timm |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        ours = ViTForImageClassification(ViTConfig.from_preset(name)).to(args.device).eval()
        reference = timm.create_model(name, pretrained=False).to(args.device).eval()
        variants = {"current": original, "separate": _separate, "stacked": _stacked}
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            pixels = torch.randn(batch, 3, 224, 224, device=args.device)
            times = {key: [] for key in [*variants, "timm"]}
            runs = {key: (ours, projection) for key, projection in variants.items()} | {"timm": (reference, None)}
            for _ in range(2):  # warm-up
                for model, projection in runs.values():
                    _seconds_per_step(model, projection, pixels, args.steps, autocast, args.device)
            for repeat in range(args.repeats):
                order = list(runs)
                order = order[repeat % len(order) :] + order[: repeat % len(order)]  # rotate to spread drift
                for key in order:
                    model, projection = runs[key]
                    times[key].append(_seconds_per_step(model, projection, pixels, args.steps, autocast, args.device))
            ViTAttention._project_qkv = original
            rate = {key: batch / statistics.median(values) for key, values in times.items()}
            print(f"| {name} | {batch} | {rate['current']:.0f} | {rate['separate']:.0f} | {rate['stacked']:.0f} | "
                  f"{rate['timm']:.0f} | {rate['current'] / rate['timm']:.3f} | "
                  f"{rate['separate'] / rate['timm']:.3f} | {rate['stacked'] / rate['timm']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
