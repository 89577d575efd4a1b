"""Training step time and memory of LoRA against full fine-tuning, for one ViT at one batch size.

Each mode runs in its own process (peak memory is per process), through vit-ft's own training code: the model
`vit_ft.checkpoints.loading.build_model` builds for the preset, `vit_ft.training.lora.add_lora` with
`LoraArguments` for LoRA, `ViTTrainer.compute_loss` and the optimizer `ViTTrainer.create_optimizer` builds (AdamW
parameter groups); parameters are counted by `vit_ft.checkpoints.loading.parameter_counts`. Step time is the
median over the timed steps; optimizer-state memory is the size of AdamW's state tensors after the first step;
peak memory is the CUDA peak over the steps, or on CPU the rise of the process's peak resident memory (VmHWM,
reset after set-up) during the steps.

    python scripts/benchmark_lora.py --device cpu --batch-size 8
    python scripts/benchmark_lora.py --device cuda --batch-size 64 --bf16

Quick smoke test: `--device cpu --preset vit_tiny_patch16_224 --num-labels 10 --batch-size 2 --steps 1 --warmup 1`.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_common import machine_info, preset_model, timed, training_step  # noqa: E402

from vit_ft.checkpoints.loading import parameter_counts  # noqa: E402
from vit_ft.training.arguments import LoraArguments, ViTTrainingArguments  # noqa: E402
from vit_ft.training.lora import add_lora  # noqa: E402
from vit_ft.training.trainer import ViTTrainer  # noqa: E402

MODES = ("full", "lora")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vit_base_patch16_224", help="vit_ft preset (default: vit_base at 224).")
    parser.add_argument("--num-labels", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps (after the warm-up ones).")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as the Trainer's --bf16.")
    parser.add_argument("--lora-target", default="qv")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    parser.add_argument("--probe", choices=MODES, help=argparse.SUPPRESS)  # one mode, in a child process
    return parser.parse_args(argv)


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current resident size (Linux).
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _trainer(args: argparse.Namespace, mode: str, output_dir: str) -> ViTTrainer:
    model, _ = preset_model(args.preset, args.num_labels)
    if mode == "lora":
        lora = LoraArguments(
            peft_method="lora", lora_r=args.lora_r, lora_alpha=args.lora_r, lora_target=args.lora_target
        )
        # The adapter is never saved: the base it would record is the preset the model was built from.
        model = add_lora(model, lora, base_model=args.preset)
    training_args = ViTTrainingArguments(
        output_dir=output_dir, use_cpu=args.device == "cpu", bf16=args.bf16, report_to="none", learning_rate=1e-4
    )
    trainer = ViTTrainer(model=model, args=training_args)
    trainer.model.to(training_args.device)
    trainer.create_optimizer()
    return trainer


def _state_mib(optimizer: torch.optim.Optimizer) -> float:
    tensors = [value for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value)]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def run_probe(args: argparse.Namespace) -> dict:
    """Times `args.probe`'s training steps in this process and measures its memory."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = _trainer(args, args.probe, output_dir)
        model, optimizer = trainer.model, trainer.optimizer
        size = model.config.image_size
        inputs = {
            "pixel_values": torch.randn(args.batch_size, 3, size, size, device=device),
            "labels": torch.randint(0, args.num_labels, (args.batch_size,), device=device),
        }
        model.train()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        else:
            _reset_peak_rss()
            before = _peak_rss_mib()
        times, state_mib = [], None
        for step in range(args.warmup + args.steps):
            seconds = timed(lambda: training_step(trainer, inputs, args.bf16), device)
            if step >= args.warmup:
                times.append(seconds)
            state_mib = state_mib if state_mib is not None else _state_mib(optimizer)
        if device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        else:
            peak = _peak_rss_mib() - before
    total, trainable = parameter_counts(model)
    return {
        "mode": args.probe,
        "step_seconds": statistics.median(times),
        "step_seconds_all": times,
        "optimizer_state_mib": state_mib,
        "peak_memory_mib": peak,
        "trainable_parameters": trainable,
        "parameters": total,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.probe:
        print("PROBE " + json.dumps(run_probe(args)), flush=True)
        return
    results = {}
    for mode in MODES:
        command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--probe", mode]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(next(line for line in output.splitlines() if line.startswith("PROBE "))[6:])
    full, lora = results["full"], results["lora"]
    print(
        f"{args.preset}, batch {args.batch_size}, {args.device}{' bf16' if args.bf16 else ''}, LoRA r={args.lora_r} "
        f"on {args.lora_target}; median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(f"{'mode':<6} {'step s':>8} {'peak MiB':>9} {'optimizer MiB':>14} {'trainable':>12}")
    for row in (full, lora):
        print(
            f"{row['mode']:<6} {row['step_seconds']:>8.3f} {row['peak_memory_mib']:>9.0f} "
            f"{row['optimizer_state_mib']:>14.1f} {row['trainable_parameters']:>12,}"
        )
    ratios = {
        "step_time_lora_over_full": lora["step_seconds"] / full["step_seconds"],
        "peak_memory_lora_over_full": lora["peak_memory_mib"] / full["peak_memory_mib"],
        "optimizer_state_lora_over_full": lora["optimizer_state_mib"] / full["optimizer_state_mib"],
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.3f}")
    if args.json:
        device = torch.device(args.device)
        Path(args.json).write_text(
            json.dumps(
                {"machine": machine_info(device), "args": vars(args), "results": results, "ratios": ratios}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
