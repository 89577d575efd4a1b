"""Few-shot results on a built-in data set: test accuracy with K labelled training images per class, mean +- std
over seeds, for digits (scikit-learn's 8x8) or lfw_faces (scikit-image's 25x25 faces and non-faces).

For each seed, the MAE pretraining (the data set's `recipes/pretrain/*_mae.yaml` with `--seed`, on its training images
without their labels; the test images stay unseen) runs once and serves that seed's `knn`, `linear_probe` and
`pretrained`. For each K and seed, on the same K images per class (`train_samples_per_class`, drawn after the run's
validation split is carved, as `vit-ft train` draws them; K = `all`: the whole pool left after that split):

- `scratch`: `vit-ft train` of the data set's from-scratch recipe (`recipes/full_finetune/digits.yaml`, ...);
- `pretrained`: `vit-ft train` of its `*_from_mae.yaml`, fine-tuning the seed's MAE encoder;
- `scratch_class_token`, `pretrained_class_token`: the same two with the class token as the classifier's input in
  place of the recipes' mean pooling, which wins on the whole data over the recipe's epochs but learns slower in a
  short run;
- `linear_probe`: `vit-ft train` of its `*_linear_probe.yaml` on the seed's MAE encoder, frozen;
- `knn`: `vit-ft knn` (k = min(20, K x classes), T = 0.07) on the seed's MAE encoder, frozen;
- `svc`, `logistic`: scikit-learn's SVC and LogisticRegression on the grey pixels (`DataSet`).

Fine-tuning and probing runs train for the same number of optimizer steps whatever K (`--steps`), so that a small K
is not also a short run. The end is a Markdown table (methods by K, mean +- std in percent) and, with `--output`, the
accuracies by method, K and seed as JSON.

    python scripts/small_data_results.py --dataset digits --ks 1,5,10,25,all --seeds 0,1,2 \
        --output docs/small_data_digits.json
    python scripts/small_data_results.py --dataset lfw_faces --ks 1,5,10,25,all --seeds 0,1,2 \
        --output docs/small_data_lfw_faces.json

Quick check of every code path (minutes): add
`--ks 2,all --seeds 0 --steps 4 --pretrain_epochs 1 --work_dir outputs/small_data_check` and leave out `--output`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vit_ft.data.arguments import DataArguments  # noqa: E402
from vit_ft.data.datasets import load_image_datasets  # noqa: E402
from vit_ft.data.transforms import decode_image  # noqa: E402
from vit_ft.output_dir import ALL_RESULTS, RECIPE  # noqa: E402

METHODS = (
    "scratch",
    "scratch_class_token",
    "pretrained",
    "pretrained_class_token",
    "linear_probe",
    "knn",
    "svc",
    "logistic",
)
CLASS_TOKEN = "_class_token"  # a method's suffix: its recipe's run, the classifier reading the class token
FINE_TUNING = ("scratch", "pretrained", "linear_probe")  # the methods with a `vit-ft train` recipe of their own
# the methods that need the seed's MAE encoder
ENCODER_METHODS = ("pretrained", "pretrained_class_token", "linear_probe", "knn")
PIXEL_METHODS = ("svc", "logistic")  # scikit-learn on the pixels: one data load serves both
ALL = "all"


@dataclass(frozen=True)
class DataSet:
    """A built-in data set's recipes, and how the pixel baselines read its images."""

    name: str
    recipes: dict[str, str]  # `scratch`, `pretrained`, `linear_probe` and `pretrain`: the recipe of each
    # Grey levels the baselines see: digits' 0..16, as scikit-learn's load_digits gives them; None: grey / 255.
    pixel_levels: int | None
    svc: dict = field(default_factory=dict)

    def recipe(self, method: str) -> dict:
        return yaml.safe_load((REPO / self.recipes[method]).read_text())

    @property
    def validation_share(self) -> float:
        """The fine-tuning recipes' train_val_split: the K images per class come from the rest."""
        shares = {method: self.recipe(method)["train_val_split"] for method in FINE_TUNING}
        if len(set(shares.values())) != 1:
            raise ValueError(
                f"The {self.name} recipes carve different validation splits ({shares}): the "
                "methods would draw their K images from different pools. Give them one "
                "train_val_split."
            )
        return shares["scratch"]


DATASETS = {
    data.name: data
    for data in (
        # SVC(gamma=0.001, C=10): scikit-learn's digits example (98.89% trained on our split's 1,437 training images).
        DataSet(
            "digits",
            {
                "scratch": "recipes/full_finetune/digits.yaml",
                "pretrained": "recipes/full_finetune/digits_from_mae.yaml",
                "linear_probe": "recipes/full_finetune/digits_linear_probe.yaml",
                "pretrain": "recipes/pretrain/digits_mae.yaml",
            },
            16,
            {"gamma": 0.001, "C": 10},
        ),
        # SVC's defaults (gamma="scale", C=1): no published setting for these images to borrow; not tuned.
        DataSet(
            "lfw_faces",
            {
                "scratch": "recipes/full_finetune/lfw_faces.yaml",
                "pretrained": "recipes/full_finetune/lfw_faces_from_mae.yaml",
                "linear_probe": "recipes/full_finetune/lfw_faces_linear_probe.yaml",
                "pretrain": "recipes/pretrain/lfw_faces_mae.yaml",
            },
            None,
        ),
    )
}


def vit_ft(*args: str) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "vit_ft.cli", *map(str, args)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"vit-ft {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")


def few_shot(k: str) -> list[str]:
    """The data flags of K images per class; none for K = all."""
    return [] if k == ALL else ["--train_samples_per_class", k]


def pixels(dataset, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(images, pixels) grey values, 0..1 or rounded to 0..`levels`, and the labels."""
    grey = np.stack(
        [
            np.asarray(decode_image(image).convert("L"), dtype=np.float64).reshape(-1) / 255
            for image in dataset["image"]
        ]
    )
    return (grey if levels is None else np.round(grey * levels)), np.asarray(dataset["label"])


def pixel_baselines(data_set: DataSet, k: str, seed: int) -> dict[str, float]:
    per_class = None if k == ALL else int(k)
    args = DataArguments(
        dataset_name=data_set.name, train_val_split=data_set.validation_share, train_samples_per_class=per_class
    )
    data, _ = load_image_datasets(args, seed)
    train_x, train_y = pixels(data["train"], data_set.pixel_levels)
    test_x, test_y = pixels(data["test"], data_set.pixel_levels)
    models = {"svc": SVC(**data_set.svc), "logistic": LogisticRegression(max_iter=5000)}
    return {
        name: float((model.fit(train_x, train_y).predict(test_x) == test_y).mean()) for name, model in models.items()
    }


def pretrain(data_set: DataSet, output_dir: Path, seed: int, epochs: int | None) -> float:
    """
    The seed's MAE encoder in `output_dir`, and the seconds it took; a finished pretraining there with the same seed
    and epochs is kept (0 s), any other is replaced.
    """
    wanted = {"seed": seed, "num_train_epochs": epochs or data_set.recipe("pretrain")["num_train_epochs"]}
    if (output_dir / ALL_RESULTS).is_file() and (output_dir / RECIPE).is_file():
        done = yaml.safe_load((output_dir / RECIPE).read_text())
        if all(done.get(key) == value for key, value in wanted.items()):
            return 0.0
    started = time.monotonic()
    vit_ft(
        "pretrain",
        data_set.recipes["pretrain"],
        "--output_dir",
        output_dir,
        "--seed",
        seed,
        "--num_train_epochs",
        wanted["num_train_epochs"],
        "--overwrite_output_dir",
        "true",
    )
    return time.monotonic() - started


def fine_tune(recipe: str, output_dir: Path, k: str, seed: int, steps: int, *extra: str) -> float:
    vit_ft(
        "train",
        recipe,
        *few_shot(k),
        "--seed",
        seed,
        "--max_steps",
        steps,
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--output_dir",
        output_dir,
        "--overwrite_output_dir",
        "true",
        *extra,
    )
    return json.loads((output_dir / ALL_RESULTS).read_text())["test_accuracy"]


def knn(data_set: DataSet, encoder: Path, output: Path, k: str, seed: int, classes: int) -> float:
    neighbours = 20 if k == ALL else min(20, classes * int(k))
    vit_ft(
        "knn",
        "--model",
        encoder,
        "--dataset_name",
        data_set.name,
        "--train_val_split",
        data_set.validation_share,
        *few_shot(k),
        "--seed",
        seed,
        "--k",
        neighbours,
        "--output",
        output,
        "--overwrite",
    )
    return json.loads(output.read_text())["accuracy"]


def run_vit(method: str, data_set: DataSet, k: str, seed: int, work: Path, encoder: Path, steps: int, classes: int):
    """Test accuracy of a ViT `method` (fine-tuning, probing or k-NN) with K images per class of the seed."""
    if method == "knn":
        return knn(data_set, encoder, work / f"knn_k{k}_seed{seed}.json", k, seed, classes)
    output_dir = work / f"{method}_k{k}_seed{seed}"
    recipe = method.removesuffix(CLASS_TOKEN)
    extra = [] if recipe == "scratch" else ["--model_name_or_path", encoder]
    if method.endswith(CLASS_TOKEN):
        class_token = {**data_set.recipe(recipe)["model_overrides"], "pooling": "cls"}
        extra += ["--model_overrides", json.dumps(class_token)]
    return fine_tune(data_set.recipes[recipe], output_dir, k, seed, steps, *extra)


def table(accuracy: dict[str, dict[str, dict[str, float]]], ks: list[str]) -> str:
    """Methods by K, mean +- population std over the seeds, in percent."""
    lines = ["| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for method, by_k in accuracy.items():
        cells = [
            f"{100 * statistics.mean(v):.2f} ± {100 * statistics.pstdev(v):.2f}"
            for v in (list(by_k[k].values()) for k in ks)
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--ks", default="1,5,10,25,all", help="Images per class, comma-separated; `all`: every one.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"Comma-separated, of {', '.join(METHODS)}.")
    parser.add_argument("--steps", type=int, default=300, help="Optimizer steps of each fine-tuning or probing run.")
    parser.add_argument("--pretrain_epochs", type=int, default=None, help="Default: the pretraining recipe's.")
    parser.add_argument("--work_dir", default="outputs/small_data", help="Runs go to WORK_DIR/DATASET/.")
    parser.add_argument("--output", default=None, help="Write the results as JSON here.")
    args = parser.parse_args()
    datasets.disable_progress_bars()  # the few-shot selections' "Flattening the indices" bars, in every line
    data_set = DATASETS[args.dataset]
    ks, seeds = args.ks.split(","), [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    for k in ks:
        if k != ALL and not (k.isdigit() and int(k) > 0):
            parser.error(f"--ks: {k!r} is neither a positive number of images per class nor `all`.")
    if set(methods) - set(METHODS):
        parser.error(f"--methods: {sorted(set(methods) - set(METHODS))} unknown; choose among {', '.join(METHODS)}.")
    work = (REPO / args.work_dir / data_set.name).resolve()
    work.mkdir(parents=True, exist_ok=True)
    _, names = load_image_datasets(DataArguments(dataset_name=data_set.name))

    pixel_methods = [method for method in methods if method in PIXEL_METHODS]
    accuracy = {method: {k: {} for k in ks} for method in methods}  # method -> K -> seed -> test accuracy
    seconds = {"pretrain": {}, "pixels": 0.0} | {method: 0.0 for method in methods if method not in PIXEL_METHODS}
    for seed in seeds:
        encoder = work / f"mae_seed{seed}"
        if set(ENCODER_METHODS) & set(methods):
            seconds["pretrain"][str(seed)] = pretrain(data_set, encoder, seed, args.pretrain_epochs)
            print(f"seed {seed}: MAE encoder in {encoder} ({seconds['pretrain'][str(seed)]:.0f} s)", flush=True)
        for k in ks:
            if pixel_methods:
                started = time.monotonic()
                baselines = pixel_baselines(data_set, k, seed)
                for method in pixel_methods:
                    accuracy[method][k][str(seed)] = baselines[method]
                seconds["pixels"] += time.monotonic() - started
            for method in (method for method in methods if method not in PIXEL_METHODS):
                started = time.monotonic()
                result = run_vit(method, data_set, k, seed, work, encoder, args.steps, len(names))
                accuracy[method][k][str(seed)] = result
                seconds[method] += time.monotonic() - started
            print(
                f"K={k} seed={seed}: " + ", ".join(f"{m} {accuracy[m][k][str(seed)]:.4f}" for m in methods), flush=True
            )

    print(f"\n{data_set.name}: test accuracy (%), mean ± std over seeds {args.seeds}\n")
    print(table(accuracy, ks))
    spent = ", ".join(f"{name} {value:.0f}" for name, value in seconds.items() if name != "pretrain")
    pretraining = ", ".join(f"seed {seed} {value:.0f}" for seed, value in seconds["pretrain"].items())
    print(f"\nseconds: {spent}; pretraining: {pretraining or 'none'}")
    if args.output:
        summary = {
            method: {
                k: {"mean": statistics.mean(list(by_seed.values())), "std": statistics.pstdev(list(by_seed.values()))}
                for k, by_seed in by_k.items()
            }
            for method, by_k in accuracy.items()
        }
        result = {
            "dataset": data_set.name,
            "ks": ks,
            "seeds": seeds,
            "settings": vars(args),
            "accuracy": accuracy,
            "summary": summary,
            "seconds": seconds,
        }
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
