"""The cost of a distillation training step against a plain one: the teacher's forward and the extra loss.

Both steps go through vit-ft's training code: `ViTTrainer.compute_loss` (with and without a `Teacher`) and its
AdamW groups, on two copies of the same student, timed in turns so that both see the same machine state. The
teacher's forward alone is timed too. Medians over the timed steps.

    python scripts/benchmark_distill.py --device cpu --batch-size 16
    python scripts/benchmark_distill.py --device cuda --batch-size 256 --bf16 --teacher-dtype bfloat16
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
from benchmark_common import machine_info, timed, training_step  # noqa: E402

from vit_ft import ViTConfig, ViTForImageClassification  # noqa: E402
from vit_ft.arguments import ViTTrainingArguments  # noqa: E402
from vit_ft.checkpoints.loading import default_processor  # noqa: E402
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
    parser.add_argument("--teacher-dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--distillation-type", default="hard", choices=["soft", "hard"])
    parser.add_argument("--json", help="Also write the results to this JSON file.")
    return parser.parse_args(argv)


def _trainer(args: argparse.Namespace, student, teacher: Teacher | None, output_dir: str) -> ViTTrainer:
    training_args = ViTTrainingArguments(output_dir=output_dir, use_cpu=args.device == "cpu", bf16=args.bf16,
                                         report_to="none", distillation_type=args.distillation_type)  # fmt: skip
    trainer = ViTTrainer(model=student, args=training_args, teacher=teacher)
    trainer.model.to(training_args.device).train()
    trainer.create_optimizer()
    return trainer


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    student = ViTForImageClassification(ViTConfig.from_preset(args.student, num_labels=args.num_labels))
    teacher_model = ViTForImageClassification(ViTConfig.from_preset(args.teacher, num_labels=args.num_labels))
    size = student.config.image_size
    processor = default_processor(size)
    teacher = Teacher(teacher_model, default_processor(teacher_model.config.image_size), processor, args.teacher_dtype)
    inputs = {"pixel_values": torch.randn(args.batch_size, 3, size, size, device=device),
              "labels": torch.randint(0, args.num_labels, (args.batch_size,), device=device)}  # fmt: skip
    with tempfile.TemporaryDirectory() as output_dir:
        plain = _trainer(args, student, None, output_dir)
        distilled = _trainer(args, copy.deepcopy(student), teacher, output_dir)
        times = {"plain": [], "distillation": [], "teacher_forward": []}
        steps = {
            "plain": lambda: training_step(plain, inputs, args.bf16),
            "distillation": lambda: training_step(distilled, inputs, args.bf16),
            "teacher_forward": lambda: distilled.teacher(inputs["pixel_values"]),
        }
        for step in range(args.warmup + args.steps):
            for name, run in steps.items():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                    seconds = timed(run, device)
                if step >= args.warmup:
                    times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["distillation"] / medians["plain"]
    print(f"student {args.student}, teacher {args.teacher} ({args.teacher_dtype}), batch {args.batch_size}, "
          f"{args.device}{' bf16' if args.bf16 else ''}, {args.distillation_type} distillation; median of "
          f"{args.steps} steps after {args.warmup} warm-up")  # fmt: skip
    for name, seconds in medians.items():
        print(f"{name:<16} {seconds:8.3f} s")
    print(f"distillation_step_over_plain_step: {ratio:.3f}")
    print(f"teacher_forward_share_of_distillation_step: {medians['teacher_forward'] / medians['distillation']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(device), "args": vars(args), "times": times,
                                               "medians": medians, "ratio": ratio}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
