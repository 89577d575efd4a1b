"""Inference speed on the CPU: PyTorch eager, torch.compile, ONNX Runtime float32 and ONNX Runtime int8.

For each model (vit_tiny and vit_small at 224, random weights, and any saved model given with --model_dirs, e.g. the
digits model) and batch size, the four runtimes are timed in turns, round after round (interleaved, so a slow spell
of the machine falls on all of them), and the median per runtime is reported as images/s and latency per batch, with
its ratio to PyTorch eager. Run it alone on the machine:

    OMP_NUM_THREADS=2 python scripts/benchmark_inference.py --model_dirs outputs/digits --output inference.json

Each timing repeats its calls for at least --min_seconds (the call count then differs per runtime, and the JSON keeps
it): a batch-1 call of vit_tiny takes 15-40 ms, and four of them would time one burst of the machine's noise.

--without_compile leaves torch.compile out of the process: eager runs faster in a process where compile ran (its
activations' pages stay mapped there), so that is the ratio a plain eager server sees (docs/benchmarks.md).
--with_plain_export also times torch's export without vit_ft's graph rewrites (vit_ft/export/graph_rewrites.py).
--presets with no value times --model_dirs only.
--smoke runs one tiny model, one round, to check the script (tests/test_benchmark_inference_script.py).
"""

import argparse
import json
import math
import statistics
import tempfile
import time
import timeit
from pathlib import Path

import torch

from vit_ft import ViTConfig, ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor, load_model
from vit_ft.export.onnx_export import export_onnx
from vit_ft.export.runtime import OnnxClassifier

# eager_control is eager again, timed as a runtime of its own: how far its ratio to eager strays from 1 is the noise.
# The _plain runtimes (--with_plain_export) run torch's export without vit_ft's graph rewrites: what those gain.
RUNTIMES = ("eager", "compile", "onnx_float32", "onnx_int8", "onnx_float32_plain", "onnx_int8_plain", "eager_control")
PRESETS = ("vit_tiny_patch16_224", "vit_small_patch16_224")
SETTLE_SECONDS = 1.0


def _save_preset(preset: str, folder: Path, overrides: dict) -> str:
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig.from_preset(preset, num_labels=1000, **overrides))
    model.save_pretrained(folder)
    default_processor(model.config.image_size).save_pretrained(folder)
    return str(folder)


def _runners(model_dir: str, export_dirs: dict[str, Path], with_compile: bool = True) -> dict:
    """
    A function per runtime that classifies a batch of pixel values, in RUNTIMES' order. `export_dirs` holds the
    export and optionally the `plain` one, without graph rewrites.
    """
    model = load_model(model_dir).eval()

    def in_pytorch(module):
        def run(pixel_values):
            with torch.inference_mode():
                return module(pixel_values=pixel_values).logits

        return run

    runners = {"eager": in_pytorch(model), "eager_control": in_pytorch(model)}
    for kind, export_dir in export_dirs.items():
        suffix = "" if kind == "export" else f"_{kind}"
        runners[f"onnx_float32{suffix}"] = OnnxClassifier(export_dir).logits
        runners[f"onnx_int8{suffix}"] = OnnxClassifier(export_dir, "model_quantized.onnx").logits
    if with_compile:
        runners["compile"] = in_pytorch(torch.compile(model))
    return {runtime: runners[runtime] for runtime in RUNTIMES if runtime in runners}


def _time(run, pixel_values: torch.Tensor, calls: int) -> float:
    """Seconds per call of `run(pixel_values)`, over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        run(pixel_values)
    return (time.perf_counter() - start) / calls


def _calls_lasting(run, pixel_values: torch.Tensor, calls: int, min_seconds: float) -> int:
    """At least `calls`, and enough calls of `run` that timing them takes `min_seconds`."""
    if min_seconds <= 0:
        return calls
    # autorange times 1, 2, 5, 10, ... calls until they take 0.2 s: the rate of several calls, not of one slow first.
    number, seconds = timeit.Timer(lambda: run(pixel_values)).autorange()
    return max(calls, math.ceil(min_seconds * number / seconds))


def benchmark(
    model_dir: str,
    name: str,
    batch_sizes: list[int],
    rounds: int,
    calls: int,
    work: Path,
    with_compile: bool = True,
    min_seconds: float = 0.0,
    with_plain_export: bool = False,
) -> list[dict]:
    export_dirs = {"export": export_onnx(model_dir, str(work / f"{name}_onnx"), quantize="int8")}
    if with_plain_export:
        plain = export_onnx(model_dir, str(work / f"{name}_onnx_plain"), quantize="int8", graph_rewrites=False)
        export_dirs["plain"] = plain
    runners = _runners(model_dir, export_dirs, with_compile)
    runtimes = tuple(runners)
    size = load_model(model_dir).config.image_size
    rows = []
    for batch in batch_sizes:
        pixel_values = torch.randn(batch, 3, size, size)
        for run in runners.values():  # warm-up: compilation, ONNX Runtime's first-call allocations
            run(pixel_values)
        call_counts = {
            runtime: _calls_lasting(runners[runtime], pixel_values, calls, min_seconds) for runtime in runtimes
        }
        seconds = {runtime: [] for runtime in runtimes}
        for round_index in range(rounds):
            # Each round starts one runtime later, so that each runtime follows each of the others in turn: whatever
            # one runtime leaves behind (warm caches, threads still awake) does not always favour the same next one.
            shift = round_index % len(runtimes)
            for runtime in runtimes[shift:] + runtimes[:shift]:
                # The previous runtime's threads spin-wait for a while after their last task (OpenMP's block time,
                # ONNX Runtime's spinning), taking the cores from the next one: let them fall asleep first.
                time.sleep(SETTLE_SECONDS)
                seconds[runtime].append(_time(runners[runtime], pixel_values, call_counts[runtime]))
        median = {runtime: statistics.median(times) for runtime, times in seconds.items()}
        rows.append(
            {
                "model": name,
                "batch": batch,
                "seconds": seconds,
                "calls": call_counts,
                "images_per_s": {runtime: batch / value for runtime, value in median.items()},
                "latency_ms": {runtime: value * 1000 for runtime, value in median.items()},
                "ratio_to_eager": {runtime: median["eager"] / value for runtime, value in median.items()},
                # Each round's eager time over its control's: the spread a ratio must clear to be a difference.
                "control_spread": [
                    min(ratios := [e / c for e, c in zip(seconds["eager"], seconds["eager_control"])]),
                    max(ratios),
                ],
            }
        )
    return rows


def _table(rows: list[dict]) -> str:
    runtimes = list(rows[0]["seconds"])
    header = "| model | batch | " + " | ".join(f"{r} img/s (ms, x eager)" for r in runtimes) + " | control spread |"
    lines = [header, "|" + "---|" * (3 + len(runtimes))]
    for row in rows:
        cells = [
            f"{row['images_per_s'][r]:.1f} ({row['latency_ms'][r]:.1f}, {row['ratio_to_eager'][r]:.2f}x)"
            for r in runtimes
        ]
        spread = "{:.2f}-{:.2f}".format(*row["control_spread"])
        lines.append(f"| {row['model']} | {row['batch']} | " + " | ".join(cells) + f" | {spread} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dirs", nargs="*", default=[], help="Saved models to add, e.g. outputs/digits.")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), help="Presets at 224; none: --model_dirs only.")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=7, help="Interleaved rounds; the median is reported.")
    parser.add_argument("--calls", type=int, default=10, help="Calls timed together in a round, at the least.")
    parser.add_argument("--min_seconds", type=float, help="Shortest timing, more calls if needed (1; --smoke: 0).")
    parser.add_argument(
        "--without_compile",
        action="store_true",
        help="Leave torch.compile out: eager then runs in a process that never compiled (see docs).",
    )
    parser.add_argument(
        "--with_plain_export",
        action="store_true",
        help="Also time the export without graph rewrites (onnx_*_plain): what the rewrites gain.",
    )
    parser.add_argument("--smoke", action="store_true", help="One tiny model, batch 1 and 2, one round.")
    parser.add_argument("--output", help="JSON file for every timing.")
    args = parser.parse_args()
    if args.min_seconds is None:
        args.min_seconds = 0.0 if args.smoke else 1.0
    threads = torch.get_num_threads()
    print(f"CPU threads (torch and ONNX Runtime): {threads}")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.smoke:
            tiny = dict(image_size=32, num_hidden_layers=2)
            models = {"vit_tiny_2_layers_32": _save_preset(PRESETS[0], work / "tiny", tiny)}
            args.batch_sizes, args.rounds, args.calls = [1, 2], 1, 1
        else:
            models = {preset: _save_preset(preset, work / preset, {}) for preset in args.presets}
        models.update({Path(folder).name: folder for folder in args.model_dirs})
        rows = [
            row
            for name, folder in models.items()
            for row in benchmark(
                folder,
                name,
                args.batch_sizes,
                args.rounds,
                args.calls,
                work,
                not args.without_compile,
                args.min_seconds,
                args.with_plain_export,
            )
        ]
    print(_table(rows))
    if args.output:
        Path(args.output).write_text(json.dumps({"threads": threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
