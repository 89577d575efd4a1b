"""Few-shot results on digits: test accuracy with K labelled training images per class, mean +- std over seeds.

For each K and seed, on the same K images per class (`train_samples_per_class`, drawn after the run's validation
split is carved, as `vit-ft train` draws them):

- `svc`, `logistic`: scikit-learn's SVC(gamma=0.001, C=10) and LogisticRegression on the 8x8 pixels (0..16);
- `knn`: `vit-ft knn` (k = min(20, K * classes), T = 0.07) on the frozen encoder of the MAE pretraining;
- `scratch`: `vit-ft train recipes/full_finetune/digits.yaml` with K per class;
- `pretrained`: `vit-ft train recipes/full_finetune/digits_from_mae.yaml` (fine-tuning the MAE encoder) with K.

The pretraining (`vit-ft pretrain recipes/pretrain/digits_mae.yaml`, digits' training images without their labels;
the test images stay unseen) runs once, with seed 0, and serves every seed. Fine-tuning runs train for the same
number of optimizer steps whatever K (`--steps`), so that a small K is not also a short run.

    python scripts/small_data_results.py --ks 1,5,10,25 --seeds 0,1,2 --output docs/small_data_results.json

Quick check: `--ks 2 --seeds 0 --steps 4 --pretrain_epochs 1 --methods svc,logistic,knn,scratch,pretrained`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vit_ft.data.arguments import DataArguments  # noqa: E402
from vit_ft.data.datasets import load_image_datasets  # noqa: E402
from vit_ft.data.transforms import decode_image  # noqa: E402

METHODS = ("svc", "logistic", "knn", "scratch", "pretrained")
VALIDATION_SHARE = 0.1  # recipes/full_finetune/digits.yaml's train_val_split: the K images come from the rest


def vit_ft(*args: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "vit_ft.cli", *map(str, args)], cwd=REPO, env=environment,
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"vit-ft {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")


def pixels(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(images, 64) grey values 0..16 as scikit-learn's load_digits gives them, and the labels."""
    images = [np.asarray(decode_image(image).convert("L"), dtype=np.float64).reshape(-1) for image in dataset["image"]]
    return np.round(np.stack(images) * 16 / 255), np.asarray(dataset["label"])


def pixel_baselines(k: int, seed: int) -> dict[str, float]:
    args = DataArguments(dataset_name="digits", train_val_split=VALIDATION_SHARE, train_samples_per_class=k)
    data, _ = load_image_datasets(args, seed)
    train_x, train_y = pixels(data["train"])
    test_x, test_y = pixels(data["test"])
    models = {"svc": SVC(gamma=0.001, C=10), "logistic": LogisticRegression(max_iter=5000)}
    return {name: float((model.fit(train_x, train_y).predict(test_x) == test_y).mean())
            for name, model in models.items()}  # fmt: skip


def test_accuracy(output_dir: Path) -> float:
    return json.loads((output_dir / "all_results.json").read_text())["test_accuracy"]


def fine_tune(recipe: str, output_dir: Path, k: int, seed: int, steps: int, *extra: str) -> float:
    vit_ft("train", recipe, "--train_samples_per_class", k, "--seed", seed, "--max_steps", steps,
           "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", output_dir, "--overwrite_output_dir",
           "true", *extra)  # fmt: skip
    return test_accuracy(output_dir)


def knn(pretrained: Path, output_dir: Path, k: int, seed: int) -> float:
    output = output_dir / f"knn_k{k}_seed{seed}.json"
    vit_ft("knn", "--model", pretrained, "--dataset_name", "digits", "--train_val_split", VALIDATION_SHARE,
           "--train_samples_per_class", k, "--seed", seed, "--k", min(20, 10 * k), "--output", output,
           "--overwrite")  # fmt: skip
    return json.loads(output.read_text())["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", default="1,5,10,25", help="Images per class, comma-separated.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=300, help="Optimizer steps of each fine-tuning run.")
    parser.add_argument("--pretrain_epochs", type=int, default=None, help="Default: the pretraining recipe's.")
    parser.add_argument("--work_dir", default="outputs/small_data")
    parser.add_argument("--output", default=None, help="Write the results as JSON here.")
    args = parser.parse_args()
    ks, seeds = [int(k) for k in args.ks.split(",")], [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    work = (REPO / args.work_dir).resolve()
    pretrained = work / "digits_mae"
    if {"knn", "pretrained"} & set(methods) and not (pretrained / "config.json").is_file():
        started = time.monotonic()
        epochs = [] if args.pretrain_epochs is None else ["--num_train_epochs", args.pretrain_epochs]
        vit_ft("pretrain", "recipes/pretrain/digits_mae.yaml", "--output_dir", pretrained, *epochs)
        print(f"pretrained in {time.monotonic() - started:.0f} s", flush=True)

    scores: dict[str, dict[int, list[float]]] = {method: {k: [] for k in ks} for method in methods}
    for k in ks:
        for seed in seeds:
            if {"svc", "logistic"} & set(methods):
                for name, value in pixel_baselines(k, seed).items():
                    if name in methods:
                        scores[name][k].append(value)
            if "knn" in methods:
                scores["knn"][k].append(knn(pretrained, work, k, seed))
            if "scratch" in methods:
                run = work / f"scratch_k{k}_seed{seed}"
                scores["scratch"][k].append(fine_tune("recipes/full_finetune/digits.yaml", run, k, seed, args.steps))
            if "pretrained" in methods:
                run = work / f"pretrained_k{k}_seed{seed}"
                scores["pretrained"][k].append(fine_tune("recipes/full_finetune/digits_from_mae.yaml", run, k, seed,
                                                         args.steps, "--model_name_or_path", pretrained))  # fmt: skip
            print(f"K={k} seed={seed}: " + ", ".join(f"{m} {scores[m][k][-1]:.4f}" for m in methods), flush=True)

    header = "| method | " + " | ".join(f"K={k}" for k in ks) + " |"
    lines = [header, "|---|" + "---|" * len(ks)]
    for method in methods:
        cells = [f"{100 * statistics.mean(v):.2f} ± {100 * statistics.pstdev(v):.2f}" for v in scores[method].values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.output:
        Path(args.output).write_text(json.dumps({"settings": vars(args), "scores": scores}, indent=2) + "\n")


if __name__ == "__main__":
    main()
