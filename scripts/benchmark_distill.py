"""The cost of a distillation training step against a plain one: the teacher's forward and the extra loss.

Both steps go through vit-ft's training code: student and teacher built by `vit_ft.checkpoints.loading.build_model`
for their presets, the teacher wrapped in `vit_ft.training.distillation.Teacher`, and `ViTTrainer.compute_loss` (with
no teacher, and with the teacher and `distillation=DistillationArguments(...)`) and the optimizer
`ViTTrainer.create_optimizer` builds (AdamW groups), on two copies of the same student, timed in turns so that both
see the same machine state. The teacher's forward alone is timed too. Medians over the timed steps.

    python scripts/benchmark_distill.py --device cpu --batch-size 16
    python scripts/benchmark_distill.py --device cuda --batch-size 256 --bf16 --teacher-dtype bfloat16

Quick smoke test: `--device cpu --teacher vit_small_patch16_224 --num-labels 10 --batch-size 2 --steps 1 --warmup 1`.
"""

import argparse
import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_common import autocast, machine_info, preset_model, timed, training_step  # noqa: E402

from vit_ft.training.arguments import (  # noqa: E402
    DISTILLATION_TYPES,
    TEACHER_DTYPE_NAMES,
    DistillationArguments,
    ViTTrainingArguments,
)
from vit_ft.training.distillation import Teacher  # noqa: E402
from vit_ft.training.trainer import ViTTrainer  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="vit_base_patch16_224", help="Teacher preset (default: vit_base).")
    parser.add_argument("--student", default="vit_tiny_patch16_224", help="Student preset (default: vit_tiny).")
    parser.add_argument("--num-labels", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps of each kind (after the warm-up ones).")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as the Trainer's --bf16.")
    parser.add_argument("--teacher-dtype", default="float32", choices=TEACHER_DTYPE_NAMES)
    parser.add_argument("--distillation-type", default="hard", choices=DISTILLATION_TYPES)
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    return parser.parse_args(argv)


def _trainer(
    args: argparse.Namespace,
    student,
    output_dir: str,
    teacher: Teacher | None = None,
    distillation: DistillationArguments | None = None,
) -> ViTTrainer:
    training_args = ViTTrainingArguments(
        output_dir=output_dir, use_cpu=args.device == "cpu", bf16=args.bf16, report_to="none"
    )
    trainer = ViTTrainer(model=student, args=training_args, teacher=teacher, distillation=distillation)
    trainer.model.to(training_args.device).train()
    trainer.create_optimizer()
    return trainer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    student, processor = preset_model(args.student, args.num_labels)
    teacher_model, teacher_processor = preset_model(args.teacher, args.num_labels)
    size = student.config.image_size
    # The loss settings a recipe's distillation group gives; no teacher path, the teacher is built here.
    distillation = DistillationArguments(distillation_type=args.distillation_type, teacher_dtype=args.teacher_dtype)
    teacher = Teacher(teacher_model, teacher_processor, processor, distillation.teacher_dtype)
    inputs = {
        "pixel_values": torch.randn(args.batch_size, 3, size, size, device=device),
        "labels": torch.randint(0, args.num_labels, (args.batch_size,), device=device),
    }
    with tempfile.TemporaryDirectory() as output_dir:
        plain = _trainer(args, student, output_dir)
        distilled = _trainer(args, copy.deepcopy(student), output_dir, teacher, distillation)
        times = {"plain": [], "distillation": [], "teacher_forward": []}
        steps = {
            "plain": lambda: training_step(plain, inputs, args.bf16),
            "distillation": lambda: training_step(distilled, inputs, args.bf16),
            "teacher_forward": lambda: distilled.teacher(inputs["pixel_values"]),
        }
        for step in range(args.warmup + args.steps):
            for name, run in steps.items():
                with autocast(device, args.bf16):
                    seconds = timed(run, device)
                if step >= args.warmup:
                    times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["distillation"] / medians["plain"]
    print(
        f"student {args.student}, teacher {args.teacher} ({args.teacher_dtype}), batch {args.batch_size}, "
        f"{args.device}{' bf16' if args.bf16 else ''}, {args.distillation_type} distillation; median of "
        f"{args.steps} steps after {args.warmup} warm-up"
    )
    for name, seconds in medians.items():
        print(f"{name:<16} {seconds:8.3f} s")
    print(f"distillation_step_over_plain_step: {ratio:.3f}")
    print(f"teacher_forward_share_of_distillation_step: {medians['teacher_forward'] / medians['distillation']:.3f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine_info(device),
                    "args": vars(args),
                    "times": times,
                    "medians": medians,
                    "ratio": ratio,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
