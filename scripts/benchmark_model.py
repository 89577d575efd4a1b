"""Speed and memory of vit_ft's ViT against transformers' and timm's, all built with the same architecture.

vit_ft's model is the one the library builds for a preset (`vit_ft.checkpoints.loading.build_model`, as
`vit-ft train` builds a model trained from scratch); the references are transformers' `ViTForImageClassification`
and `timm.create_model` of the same architecture. For each preset the models are created once (same parameter
count by `vit_ft.checkpoints.loading.parameter_counts`, asserted), then for each batch size:
warm-up steps, then `--repeats` rounds in which every model runs `--steps` training steps, the order of the models
rotating from round to round so that drift (thermal, clocks, other processes) hits all alike. A training step
is forward, `F.cross_entropy(logits, labels)`, backward, `torch.optim.AdamW.step()` and `zero_grad(set_to_none=True)`;
an inference step is a forward in eval mode under `torch.inference_mode()`. The reported time per step is the median
over the rounds; throughput is batch / that time. A ratio above 1 means vit_ft is faster.

Peak memory: on CUDA, the increase of `torch.cuda.max_memory_allocated` over the memory allocated before one step
(after warm-up, so AdamW's state is already there and not counted; the models share the GPU, so absolute peaks
would include the others' weights). On CPU it is "n/a" unless `--cpu-memory` is given: then each model's training
step runs in a fresh subprocess (this script, re-invoked) and the figure is its peak RSS (VmHWM on Linux, where
`ru_maxrss` would include the parent's peak; `ru_maxrss` elsewhere) after one training step minus the peak RSS right
after building the model, optimizer and inputs. That first step also creates AdamW's state (2 x parameters x 4
bytes, equal for all the models) and, with `--compile`, the compilation (what it allocates in this process; its
worker processes are not counted).

MFU (model FLOP utilisation): images/s x FLOPs per image / the chip's peak. FLOPs per image are counted from the
architecture (`flops_per_image`: every matrix product of the patch embedding, attention, MLP and head, 2 FLOPs per
multiply-add; a training step is taken as 3 forwards, backward costing two); the peak is `--peak-tflops`, or for an
H100 or H200 the datasheet's dense bf16 figure, 989 TFLOP/s. ViT-B/16 at 224 comes to 35.1 GFLOPs per forward.

`--control` adds a second timm model (timm / timm_control is the spread of two identical models: the noise floor of
every ratio). `--isolate-inference` times CPU inference in a fresh process per model and round, where the allocator's
state (and so the page faults a forward pays for) is the model's own, as in a process that only serves predictions.

Commands used for the reported numbers:

    # CPU: training and inference in one process, then inference in processes of its own
    python scripts/benchmark_model.py --models vit_tiny_patch16_224,vit_small_patch16_224 --batch-sizes 8,32 --control
    python scripts/benchmark_model.py --models vit_tiny_patch16_224,vit_small_patch16_224 --batch-sizes 8,32 \
        --control --isolate-inference
    # GPU, eager then compiled
    python scripts/benchmark_model.py --device cuda --dtype bfloat16 \
        --models vit_small_patch16_224,vit_base_patch16_224 --batch-sizes 128,256
    python scripts/benchmark_model.py --device cuda --dtype bfloat16 \
        --models vit_small_patch16_224,vit_base_patch16_224 --batch-sizes 128,256 --compile

Quick smoke test: `--models vit_tiny_patch16_224 --batch-sizes 8 --repeats 2 --steps 1 --warmup 1`.
"""

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import timm
import torch
import torch.nn.functional as F
import transformers
from benchmark_common import (
    ATTN_IMPLEMENTATION,
    Step,
    autocast,
    blocks_macs,
    check_attention,
    check_preset,
    machine_info,
    make_optimizer,
    make_training_step,
    measure_interleaved,
    measure_rounds,
    preset_model,
    seed_everything,
    synchronize,
    time_per_step,
    warm_up,
)
from torch import nn

from vit_ft.checkpoints.loading import parameter_counts
from vit_ft.model.configuration_vit_ft import PRESETS

IMPLEMENTATIONS = ("vit_ft", "transformers", "timm")
# With --control, a second timm model joins the rounds: timm / timm_control is the noise floor of the ratios, the
# spread between two identical models measured the same way.
CONTROL = "timm_control"
NUM_LABELS = 1000
_PROBE_MARKER = "PROBE_RESULT "
# Dense bf16 tensor-core peak by NVIDIA's datasheets (SXM parts), TFLOP/s: the denominator of MFU.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}


def flops_per_image(name: str, training: bool) -> float:
    """
    FLOPs of one image through preset `name`: the matrix products (2 FLOPs per multiply-add) of the patch embedding,
    each layer's q/k/v/output projections, attention scores and weighted sum, MLP, and the head; a training step as
    3 forwards. Norms, softmax and activations are left out, as MFU conventionally does.
    """
    preset = PRESETS[name]
    width, depth, mlp = preset["hidden_size"], preset["num_hidden_layers"], preset["intermediate_size"]
    patches = (preset["image_size"] // preset["patch_size"]) ** 2
    tokens = patches + 1  # the class token
    embedding = patches * 3 * preset["patch_size"] ** 2 * width
    macs = embedding + blocks_macs(tokens, width, depth, mlp) + width * NUM_LABELS
    return 2 * macs * (3 if training else 1)


def peak_tflops(args: argparse.Namespace, device: torch.device) -> float | None:
    """`--peak-tflops`, or the datasheet peak of a known GPU in bf16; None where unknown (no MFU is printed)."""
    if args.peak_tflops is not None or device.type != "cuda" or args.dtype != "bfloat16":
        return args.peak_tflops
    name = torch.cuda.get_device_name(device)
    return next((peak for chip, peak in PEAK_BF16_TFLOPS.items() if chip in name), None)


@dataclass
class Row:
    """Results of one (preset, batch size, dtype, mode) combination."""

    model: str
    batch: int
    dtype: str
    mode: str
    train_step_s: dict[str, list[float]]
    infer_step_s: dict[str, list[float]]
    train_images_per_s: dict[str, float] = field(default_factory=dict)
    infer_images_per_s: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    train_memory_mib: dict[str, float] | None = None
    infer_memory_mib: dict[str, float] | None = None
    # Median minor page faults per step (CPU): fresh pages the kernel maps and zeroes when the allocator grows.
    train_page_faults: dict[str, float] = field(default_factory=dict)
    infer_page_faults: dict[str, float] = field(default_factory=dict)
    train_mfu: dict[str, float] = field(default_factory=dict)
    infer_mfu: dict[str, float] = field(default_factory=dict)

    def set_mfu(self, peak_tflops: float | None) -> None:
        """The MFU of each implementation and phase, against `peak_tflops` (nothing when it is None)."""
        if peak_tflops is None:
            return
        for phase in _phases(self):
            flops = flops_per_image(self.model, training=phase == "train")
            mfu = {
                impl: value * flops / (peak_tflops * 1e12)
                for impl, value in getattr(self, f"{phase}_images_per_s").items()
            }
            setattr(self, f"{phase}_mfu", mfu)

    def __post_init__(self) -> None:
        for phase in ("train", "infer"):
            step_s = getattr(self, f"{phase}_step_s")
            if not step_s:  # phase not measured (--phases)
                continue
            throughput = {impl: self.batch / statistics.median(times) for impl, times in step_s.items()}
            setattr(self, f"{phase}_images_per_s", throughput)
            for other in ("timm", "transformers"):
                self.ratios[f"{phase}_vit_ft/{other}"] = throughput["vit_ft"] / throughput[other]
            if CONTROL in throughput:
                self.ratios[f"{phase}_timm/{CONTROL}"] = throughput["timm"] / throughput[CONTROL]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        default="vit_tiny_patch16_224,vit_small_patch16_224",
        help="Comma-separated vit_ft presets (timm names).",
    )
    parser.add_argument("--batch-sizes", default="8,32", help="Comma-separated batch sizes.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16: autocast around forward and loss, weights stay float32.",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile each model after creation.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--repeats", type=int, default=7, help="Rounds; the median round is reported.")
    parser.add_argument("--steps", type=int, default=3, help="Steps per model in each round.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps per model, batch size and phase.")
    parser.add_argument(
        "--cpu-memory",
        action="store_true",
        help="On CPU, measure each training step's peak RSS increase in a subprocess.",
    )
    parser.add_argument("--phases", default="train,infer", help="Comma-separated: train, infer or both.")
    parser.add_argument(
        "--control",
        action="store_true",
        help="Add a second timm model: timm/timm_control shows the noise of the ratios.",
    )
    parser.add_argument(
        "--isolate-inference",
        action="store_true",
        help="On CPU, time inference in a fresh process per model and round, as a process that "
        "only serves predictions: the allocator's state is the model's own.",
    )
    parser.add_argument("--fused-adamw", action="store_true", help="AdamW(fused=True) for every model.")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="The chip's peak TFLOP/s for MFU (default: the datasheet's dense bf16 for H100/H200).",
    )
    parser.add_argument("--output", default=None, help="Write the results as JSON to this path.")
    # Internal: set when the script re-invokes itself to measure one model's RSS in a fresh process.
    parser.add_argument("--memory-probe", choices=IMPLEMENTATIONS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--infer-probe", choices=IMPLEMENTATIONS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    args.batch_sizes = [int(size) for size in args.batch_sizes.split(",") if size.strip()]
    args.implementations = IMPLEMENTATIONS + ((CONTROL,) if args.control else ())
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    if not args.phases or set(args.phases) - {"train", "infer"}:
        parser.error(f"--phases takes train, infer or both, comma-separated; got {args.phases}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available.")
    if args.isolate_inference and args.device != "cpu":
        parser.error("--isolate-inference measures CPU processes; on CUDA the caching allocator makes it moot.")
    if min(args.repeats, args.steps) < 1 or args.warmup < 0:
        parser.error("--repeats and --steps must be at least 1, --warmup at least 0.")
    for name in args.models:
        check_preset(name, parser)
    return args


def build_vit_ft(name: str) -> nn.Module:
    model, _ = preset_model(name, NUM_LABELS)
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    return model


def build_transformers(name: str) -> nn.Module:
    preset = PRESETS[name]
    config = transformers.ViTConfig(
        hidden_size=preset["hidden_size"],
        num_hidden_layers=preset["num_hidden_layers"],
        num_attention_heads=preset["num_attention_heads"],
        intermediate_size=preset["intermediate_size"],
        image_size=preset["image_size"],
        patch_size=preset["patch_size"],
        layer_norm_eps=1e-6,  # timm's and vit_ft's value (transformers defaults to 1e-12); no effect on speed
        num_labels=NUM_LABELS,
        attn_implementation=ATTN_IMPLEMENTATION,  # on the config before construction, as from_pretrained sets it
    )
    return transformers.ViTForImageClassification(config)


def build_timm(name: str) -> nn.Module:
    return timm.create_model(name, pretrained=False, num_classes=NUM_LABELS)


BUILDERS: dict[str, Callable[[str], nn.Module]] = {
    "vit_ft": build_vit_ft,
    "transformers": build_transformers,
    "timm": build_timm,
    CONTROL: build_timm,
}


def prepare_model(impl: str, name: str, device: torch.device, compile_model: bool) -> nn.Module:
    """`impl`'s model of preset `name`, seeded alike, on `device`, compiled with `compile_model`."""
    seed_everything()  # the same seed before each model, so their initialisation draws the same way
    model = BUILDERS[impl](name).to(device)
    if impl in ("vit_ft", "transformers"):
        check_attention(model, impl)
    if compile_model:
        # Static shapes: otherwise the second batch size would trigger a dynamic-shape recompile, slower than the
        # per-size graphs a training run with a fixed batch size gets.
        model = torch.compile(model, dynamic=False)
    return model


def build_models(
    name: str, implementations: tuple[str, ...], device: torch.device, compile_model: bool
) -> tuple[dict[str, nn.Module], int]:
    models = {impl: prepare_model(impl, name, device, compile_model) for impl in implementations}
    counts = {impl: parameter_counts(model)[0] for impl, model in models.items()}
    print(f"{name}: parameters {counts}", flush=True)
    assert len(set(counts.values())) == 1, f"{name}: the models differ in parameter count: {counts}"
    return models, counts["vit_ft"]


def logits_of(output: torch.Tensor | transformers.utils.ModelOutput) -> torch.Tensor:
    # timm returns the logits; the Hugging Face models an output object holding them.
    return output if isinstance(output, torch.Tensor) else output.logits


def make_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    dtype: str,
) -> Step:
    def loss() -> torch.Tensor:
        # The loss is computed here, identically for all, rather than by the Hugging Face models.
        return F.cross_entropy(logits_of(model(pixels)), labels)

    return make_training_step(optimizer, loss, pixels.device, dtype == "bfloat16")


def make_infer_step(model: nn.Module, pixels: torch.Tensor, dtype: str) -> Step:
    def step() -> None:
        with torch.inference_mode(), autocast(pixels.device, dtype == "bfloat16"):
            model(pixels)

    return step


def make_inputs(name: str, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    seed_everything()
    size = PRESETS[name]["image_size"]
    pixels = torch.randn(batch, 3, size, size, device=device)
    labels = torch.randint(0, NUM_LABELS, (batch,), device=device)
    return pixels, labels


def set_mode(models: dict[str, nn.Module], training: bool) -> None:
    for model in models.values():
        model.train(training)


def cuda_peak_increase_mib(step: Step, device: torch.device) -> float:
    gc.collect()
    synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def max_rss_mib() -> float:
    """Peak resident set size of this process so far."""
    # On Linux ru_maxrss carries over the parent's peak through fork and exec (the kernel keeps the larger of the
    # two), so a probe started by the benchmark, which holds all the models, would read the parent's size. VmHWM
    # belongs to the process's own address space, created fresh by exec.
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # KiB
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max_rss / 2**20 if sys.platform == "darwin" else max_rss / 2**10  # bytes on macOS, KiB elsewhere


def run_memory_probe(args: argparse.Namespace) -> None:
    """In a fresh process: peak RSS increase of one training step of one model."""
    device = torch.device("cpu")
    name, batch, impl = args.models[0], args.batch_sizes[0], args.memory_probe
    model = prepare_model(impl, name, device, args.compile).train()
    optimizer = make_optimizer(model)
    pixels, labels = make_inputs(name, batch, device)
    step = make_train_step(model, optimizer, pixels, labels, args.dtype)
    gc.collect()
    baseline = max_rss_mib()
    step()
    print(_PROBE_MARKER + json.dumps({"rss_increase_mib": max_rss_mib() - baseline}), flush=True)


def run_infer_probe(args: argparse.Namespace) -> None:
    """In a fresh process: seconds and page faults per inference step of one model (medians of --steps steps)."""
    device = torch.device("cpu")
    name, batch, impl = args.models[0], args.batch_sizes[0], args.infer_probe
    model = prepare_model(impl, name, device, args.compile).eval()
    pixels, _ = make_inputs(name, batch, device)
    step = make_infer_step(model, pixels, args.dtype)
    warm_up({impl: step}, args.warmup, device)
    measured = [time_per_step(step, 1, device) for _ in range(args.steps)]
    seconds, faults = zip(*measured, strict=True)
    result = {"seconds": statistics.median(seconds), "faults": statistics.median(faults)}
    print(_PROBE_MARKER + json.dumps(result), flush=True)


def run_probe(args: argparse.Namespace, name: str, batch: int, probe: str, impl: str) -> dict:
    """Runs this script again as `--{probe}-probe impl` for one preset and batch size; returns its result."""
    builder = "timm" if impl == CONTROL else impl  # a fresh process has no second model to tell apart
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--device",
        "cpu",
        "--models",
        name,
        "--batch-sizes",
        str(batch),
        "--dtype",
        args.dtype,
        f"--{probe}-probe",
        builder,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    if args.compile:
        command.append("--compile")
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith(_PROBE_MARKER):
            return json.loads(line.removeprefix(_PROBE_MARKER))
    raise RuntimeError(f"{probe} probe {impl} {name} batch {batch} failed:\n{result.stdout}\n{result.stderr}")


def cpu_peak_increase_mib(args: argparse.Namespace, name: str, batch: int, impl: str) -> float:
    # ru_maxrss only ever grows, so each measurement needs its own process.
    return run_probe(args, name, batch, "memory", impl)["rss_increase_mib"]


def measure_isolated_inference(
    args: argparse.Namespace, name: str, batch: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Each (round, model) in its own process: the median of that process's `--steps` inference steps."""

    def measure(impl: str) -> tuple[float, float]:
        result = run_probe(args, name, batch, "infer", impl)
        return result["seconds"], result["faults"]

    return measure_rounds(measure, list(args.implementations), args.repeats)


def measure_memory(
    args: argparse.Namespace,
    name: str,
    batch: int,
    train_steps: dict[str, Step],
    infer_steps: dict[str, Step],
    models: dict[str, nn.Module],
    device: torch.device,
) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    if device.type == "cuda":
        set_mode(models, True)
        train = {impl: cuda_peak_increase_mib(step, device) for impl, step in train_steps.items()}
        set_mode(models, False)
        infer = {impl: cuda_peak_increase_mib(step, device) for impl, step in infer_steps.items()}
        return train, infer
    if args.cpu_memory:
        return {impl: cpu_peak_increase_mib(args, name, batch, impl) for impl in args.implementations}, None
    return None, None


def benchmark_batch(
    args: argparse.Namespace,
    name: str,
    batch: int,
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    device: torch.device,
) -> Row:
    pixels, labels = make_inputs(name, batch, device)
    train_steps = {
        impl: make_train_step(models[impl], optimizers[impl], pixels, labels, args.dtype)
        for impl in args.implementations
    }
    infer_steps = {impl: make_infer_step(models[impl], pixels, args.dtype) for impl in args.implementations}

    train_times, train_faults, infer_times, infer_faults = {}, {}, {}, {}
    if "train" in args.phases:
        set_mode(models, True)
        warm_up(train_steps, args.warmup, device)
        train_times, train_faults = measure_interleaved(train_steps, args.repeats, args.steps, device)
    set_mode(models, False)
    if "infer" in args.phases and args.isolate_inference:
        infer_times, infer_faults = measure_isolated_inference(args, name, batch)
    elif "infer" in args.phases:
        warm_up(infer_steps, args.warmup, device)
        infer_times, infer_faults = measure_interleaved(infer_steps, args.repeats, args.steps, device)

    train_memory, infer_memory = measure_memory(args, name, batch, train_steps, infer_steps, models, device)
    return Row(
        name,
        batch,
        args.dtype,
        "compile" if args.compile else "eager",
        train_times,
        infer_times,
        train_memory_mib=train_memory,
        infer_memory_mib=infer_memory,
        train_page_faults=train_faults,
        infer_page_faults=infer_faults,
    )


def _ratio_names(row: Row) -> list[str]:
    measured = row.train_step_s or row.infer_step_s
    return ["vit_ft/timm", "vit_ft/transformers"] + ([f"timm/{CONTROL}"] if CONTROL in measured else [])


def _phases(row: Row) -> list[str]:
    return [phase for phase in ("train", "infer") if getattr(row, f"{phase}_step_s")]


def format_row(row: Row) -> str:
    def phase(label: str, throughput: dict[str, float]) -> str:
        values = ", ".join(f"{impl} {value:.1f}" for impl, value in throughput.items())
        ratios = ", ".join(f"{name} {row.ratios[f'{label}_{name}']:.3f}" for name in _ratio_names(row))
        faults = "/".join(f"{value:.0f}" for value in getattr(row, f"{label}_page_faults").values())
        mfu = ", ".join(f"{impl} {value:.1%}" for impl, value in getattr(row, f"{label}_mfu").items())
        return f"{label} img/s: {values} | {ratios} | page faults {faults}" + (f" | MFU {mfu}" if mfu else "")

    memory = ""
    if row.train_memory_mib is not None:
        memory = "\n    train peak MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in row.train_memory_mib.items())
    lines = [phase(label, getattr(row, f"{label}_images_per_s")) for label in _phases(row)]
    return f"{row.model} batch {row.batch} {row.dtype} {row.mode}\n    " + "\n    ".join(lines) + memory


def markdown_tables(rows: list[Row]) -> str:
    implementations = list(rows[0].train_step_s or rows[0].infer_step_s)
    ratio_names = _ratio_names(rows[0])
    header = [
        "model",
        "batch",
        "dtype",
        "mode",
        "phase",
        *(f"{impl} img/s" for impl in implementations),
        *ratio_names,
        "page faults per step",
        "MFU",
    ]
    speed = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    memory_header = ["model", "batch", "dtype", "mode", "phase", *(f"{impl} MiB" for impl in implementations)]
    memory = ["| " + " | ".join(memory_header) + " |", "|" + "---|" * len(memory_header)]
    for row in rows:
        key = f"| {row.model} | {row.batch} | {row.dtype} | {row.mode} "
        for label in _phases(row):
            throughput = getattr(row, f"{label}_images_per_s")
            cells = [f"{throughput[impl]:.1f}" for impl in implementations]
            cells += [f"{row.ratios[f'{label}_{name}']:.3f}" for name in ratio_names]
            cells.append(" / ".join(f"{value:.0f}" for value in getattr(row, f"{label}_page_faults").values()))
            cells.append(" / ".join(f"{value:.1%}" for value in getattr(row, f"{label}_mfu").values()) or "n/a")
            speed.append(key + f"| {label} | " + " | ".join(cells) + " |")
            measured = getattr(row, f"{label}_memory_mib")
            memory_cells = [f"{measured[impl]:.0f}" if measured else "n/a" for impl in implementations]
            memory.append(key + f"| {label} | " + " | ".join(memory_cells) + " |")
    return "\n".join(speed) + "\n\nPeak memory increase of one step (MiB):\n\n" + "\n".join(memory)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        run_memory_probe(args)
        return
    if args.infer_probe:
        run_infer_probe(args)
        return
    device = torch.device(args.device)
    hardware = machine_info(device, transformers=transformers.__version__, timm=timm.__version__)
    print(json.dumps(hardware, indent=2), flush=True)

    rows: list[Row] = []
    parameters: dict[str, int] = {}
    for name in args.models:
        models, parameters[name] = build_models(name, args.implementations, device, args.compile)
        optimizers = {impl: make_optimizer(model, args.fused_adamw) for impl, model in models.items()}
        for batch in args.batch_sizes:
            rows.append(benchmark_batch(args, name, batch, models, optimizers, device))
            rows[-1].set_mfu(peak_tflops(args, device))
            print(format_row(rows[-1]), flush=True)
        del models, optimizers  # free before the next preset's models are built
        gc.collect()

    if hasattr(os, "getloadavg"):
        hardware["load_average_end"] = os.getloadavg()
    print("\n" + markdown_tables(rows))
    if args.output:
        settings = {key: value for key, value in vars(args).items() if not key.endswith("_probe")}
        result = {
            "hardware": hardware,
            "settings": settings,
            "parameters": parameters,
            "rows": [asdict(row) for row in rows],
        }
        with open(args.output, "w") as output:
            json.dump(result, output, indent=2)
        print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
