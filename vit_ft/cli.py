"""The `vit-ft` command."""

import argparse
import json
import os
import shlex
import sys
from dataclasses import fields

from transformers import HfArgumentParser

from .data.arguments import DataArguments
from .evaluation.attention_maps import DEFAULT_METHOD, METHODS
from .export import DEFAULT_OPSET, QUANTIZATIONS, MissingExtraError
from .output_dir import SplitMetrics

# Set (to anything but 0), it shows the traceback of errors that are otherwise one line, as `vit-ft --debug` does.
DEBUG_VARIABLE = "VIT_FT_DEBUG"
# Every flag is spelt with underscores, as the recipe fields it shares the command line with; these dashed spellings
# of earlier releases still work, with a one-line note.
DEPRECATED_SPELLINGS = {
    "--timm-model": "--timm_model",
    "--image-mean": "--image_mean",
    "--image-std": "--image_std",
    "--help-all": "--help_all",
}


def _convert(args: argparse.Namespace) -> None:
    from .checkpoints.convert import convert_timm, convert_transformers
    from .checkpoints.loading import parameter_counts

    if args.source == "transformers":
        if not args.input:
            sys.exit("vit-ft convert --from transformers needs --input DIR_OR_HUB_ID.")
        model = convert_transformers(args.input, args.output, args.trust_remote_code)
    else:
        if not (args.timm_model and args.weights):
            sys.exit("vit-ft convert --from timm needs --timm_model NAME and --weights FILE.")
        model = convert_timm(args.timm_model, args.weights, args.output, args.image_mean, args.image_std)
    params, _ = parameter_counts(model)
    print(f"Wrote {type(model).__name__} ({params / 1e6:.2f}M parameters) to {args.output}")


def _train(args: argparse.Namespace) -> None:
    from .recipe import TRAIN_USAGE, Recipe, read_recipe
    from .train import run_training

    results, recipe = _run_recipe(args, "train", TRAIN_USAGE, Recipe, read_recipe, run_training)
    if recipe is not None and recipe.training.process_index == 0:
        print(f"Final metrics ({recipe.training.output_dir}):\n{results_table(results)}")


def _pretrain(args: argparse.Namespace) -> None:
    from .pretrain import PRETRAIN_USAGE, PretrainingRecipe, read_pretraining_recipe, run_pretraining

    results, recipe = _run_recipe(
        args, "pretrain", PRETRAIN_USAGE, PretrainingRecipe, read_pretraining_recipe, run_pretraining
    )
    if recipe is not None and recipe.training.process_index == 0:
        losses = {key: value for key, value in results.items() if key in ("train_loss", "eval_loss")}
        print(f"Pretrained ({recipe.training.output_dir}): {json.dumps(losses)}")


def _run_recipe(args: argparse.Namespace, command: str, usage: str, recipe_class: type, read, run) -> tuple:
    """
    `vit-ft train` and `vit-ft pretrain`: the help, or the recipe read (`read`) and its run (`run`). Returns the
    results and the recipe; (None, None) after the help. A run stopped by a signal exits with the shell's code.
    """
    from .recipe import recipe_help
    from .train import TrainingStopped

    # `vit-ft train RECIPE.yaml --help` too: after the recipe, the flags are the recipe's overrides.
    if args.help or args.help_all or {"-h", "--help", "--help_all"} & set(args.overrides):
        print(recipe_help(args.help_all or "--help_all" in args.overrides, recipe_class, usage))
        return None, None
    if args.recipe is None:
        print(f"usage: {usage} (vit-ft {command} --help lists the fields)", file=sys.stderr)
        sys.exit(2)
    # Off a terminal (a log file, a pipe) the Trainer's progress bars would fill the log with redrawn lines: it prints
    # plain log lines instead, unless the recipe or a flag sets disable_tqdm.
    defaults = {} if sys.stderr.isatty() else {"disable_tqdm": True}
    recipe = read(args.recipe, args.overrides, defaults)
    try:
        results = run(recipe)
    except TrainingStopped as stop:
        if stop.checkpoint is not None:
            release_process_group()  # every process stopped at this step; after the last step they did not agree
        if stop.announce:
            print(f"vit-ft {command}: {_stopped_message(stop, args.recipe, args.overrides, command)}", file=sys.stderr)
        sys.exit(stop.exit_code)
    release_process_group()
    return results, recipe


def release_process_group() -> None:
    """
    Ends the processes' group (`accelerate launch`) once a run has ended in every process, as torch asks of a program
    before it exits: a gloo group left to the interpreter's shutdown can abort a finished process ("terminate called
    without an active exception"). Not after an error, where another process may still wait in a collective.
    """
    from accelerate import PartialState

    state = PartialState()  # the Trainer's: it knows the launch (accelerate launch, notebook fork, one process)
    state.wait_for_everyone()  # a process still writing its results may yet use the group
    state.destroy_process_group()


def results_table(results: dict) -> str:
    """
    The final metrics of a run (`run_training`'s results) as a small table: a column per split (train, validation,
    test: those it has), a row per metric.
    """
    splits = (("train", "train"), ("validation", "eval"), ("test", "test"))
    columns = {
        name: {**SplitMetrics.from_metrics(results, prefix).as_metrics(), "runtime (s)": results[f"{prefix}_runtime"]}
        for name, prefix in splits
        if f"{prefix}_runtime" in results
    }
    # The rows in SplitMetrics' order, taken from the split with the most of them.
    rows = dict.fromkeys(row for metrics in sorted(columns.values(), key=len, reverse=True) for row in metrics)
    cells = [["", *columns], *([row, *(_format(metrics.get(row)) for metrics in columns.values())] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join([line[0].ljust(widths[0]), *map(str.rjust, line[1:], widths[1:])]) for line in cells)


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _stopped_message(stop, recipe: str, overrides: list[str], subcommand: str = "train") -> str:
    """The one line a run stopped by a signal ends with: where its checkpoint is, and the command that resumes it."""
    if stop.checkpoint is None:
        return (
            f"stopped by {stop.signal_name} after its last step ({stop.step}); the trained model is saved in "
            f"{stop.output_dir}, not evaluated."
        )
    flags, skip = [], False
    for flag in overrides:  # the run's own flags, less any earlier --resume_from_checkpoint
        if skip:
            skip = False
        elif flag == "--resume_from_checkpoint":
            skip = True
        elif not flag.startswith("--resume_from_checkpoint="):
            flags.append(flag)
    command = shlex.join(["vit-ft", subcommand, recipe, *flags, "--resume_from_checkpoint", str(stop.checkpoint)])
    return (
        f"stopped by {stop.signal_name} after step {stop.step}; checkpoint saved in {stop.checkpoint}. "
        f"Resume with: {command}"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from .data.arguments import CORRUPTIONS
    from .evaluation.evaluate import evaluate_model

    data_args = DataArguments(**{field.name: getattr(args, field.name) for field in fields(DataArguments)})
    corruptions = None
    if args.corruptions:
        corruptions = list(CORRUPTIONS) if args.corruptions == "all" else args.corruptions.split(",")
    severity = args.severity[0] if len(args.severity) == 1 else args.severity
    results = evaluate_model(
        args.model,
        data_args,
        args.split,
        corruptions,
        severity,
        args.batch_size,
        args.output,
        args.seed,
        args.base_model,
        args.onnx_file,
        args.overwrite,
        args.trust_remote_code,
        args.label_matching,
    )
    print(json.dumps(results, indent=2))


def _shard(args: argparse.Namespace) -> None:
    from .data.datasets import load_image_datasets
    from .data.sharding import write_shards

    data_args = DataArguments(**{field.name: getattr(args, field.name) for field in fields(DataArguments)})
    if data_args.is_streamed or data_args.has_shards:
        raise ValueError("vit-ft shard reads a whole source: give dataset_name or train_dir/validation_dir/test_dir.")
    data, names = load_image_datasets(data_args, args.seed)
    record = write_shards(data, names, args.output_dir, args.format, args.shard_size, args.seed)
    for split, pattern in record["splits"].items():
        count = sum(n for name, n in record["examples"].items() if name.startswith(f"{split}-"))
        print(f"{split}: {count} examples -> {args.output_dir}/{pattern}")


def _knn(args: argparse.Namespace) -> None:
    from .evaluation.knn import knn_evaluate

    data_args = DataArguments(**{field.name: getattr(args, field.name) for field in fields(DataArguments)})
    results = knn_evaluate(
        args.model,
        data_args,
        args.split,
        args.k,
        args.temperature,
        args.seed,
        args.batch_size,
        args.output,
        args.overwrite,
        args.trust_remote_code,
    )
    print(json.dumps(results, indent=2))


def _predict(args: argparse.Namespace) -> None:
    from .evaluation.predict import predict_images

    for result in predict_images(
        args.model, args.images, args.top_k, args.base_model, args.onnx_file, args.trust_remote_code
    ):
        print(json.dumps(result))


def _explain(args: argparse.Namespace) -> None:
    if args.faithfulness:
        from .evaluation.faithfulness import faithfulness

        if args.images:
            raise ValueError(
                f"--faithfulness scores a data set, not image files ({args.images[0]}, ...): name it "
                "with --dataset_name or --train_dir/--test_dir, as for vit-ft evaluate."
            )
        methods = list(METHODS) if args.method in (None, "all") else args.method.split(",")
        data_args = DataArguments(**{field.name: getattr(args, field.name) for field in fields(DataArguments)})
        results = faithfulness(
            args.model,
            data_args,
            methods,
            args.split,
            seed=args.seed,
            batch_size=args.batch_size,
            output_file=args.output,
            overwrite=args.overwrite,
            base_model=args.base_model,
            trust_remote_code=args.trust_remote_code,
        )
        print(json.dumps(results, indent=2))
        return
    from .evaluation.explain import explain_images

    if not args.images or args.output is None:
        raise ValueError(
            "give image files and --output FOLDER for their heat maps, or --faithfulness and a data set "
            "for deletion curves."
        )
    for path in explain_images(
        args.model,
        args.images,
        args.output,
        args.method or DEFAULT_METHOD,
        args.label,
        args.top_k,
        args.base_model,
        args.trust_remote_code,
    ):
        print(f"Wrote {path}")


def _merge_lora(args: argparse.Namespace) -> None:
    from .checkpoints.loading import merge_adapter

    model = merge_adapter(args.adapter, args.output, args.base_model, trust_remote_code=args.trust_remote_code)
    print(f"Wrote {type(model).__name__} (adapter {args.adapter} merged into its base) to {args.output}")


def _severities(text: str) -> list[int]:
    """`3` or `1,2,3,4,5`: the severities of `vit-ft evaluate --corruptions`."""
    severities = []
    for part in text.split(","):
        if part.strip() not in ("1", "2", "3", "4", "5"):
            raise argparse.ArgumentTypeError(f"invalid choice: {part} (severities are 1 to 5, as 3 or 1,2,3,4,5)")
        severities.append(int(part))
    return severities


def _export(args: argparse.Namespace) -> None:
    from .export.onnx_export import export_onnx

    folder = export_onnx(
        args.model,
        args.output,
        args.quantize,
        args.opset,
        args.base_model,
        overwrite=args.overwrite,
        trust_remote_code=args.trust_remote_code,
    )
    print(f"Exported {args.model} to {folder} (ONNX Runtime: vit-ft predict --model {folder} IMAGE)")


_BASE_MODEL_HELP = "Base model of a LoRA adapter, when the one its adapter_config.json names has moved."
_ONNX_FILE_HELP = "With a `vit-ft export` folder: the file of its onnx/ to run, e.g. model_quantized.onnx."
_TRUST_REMOTE_CODE_HELP = (
    "Run the code a model folder's config.json or preprocessor_config.json names in auto_map (other than vit_ft's "
    "own). Without it such a folder is refused. Only for code you trust."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vit-ft", description=__doc__)
    parser.add_argument(
        "--debug", action="store_true", help=f"Show the traceback of an error, not one line (also {DEBUG_VARIABLE}=1)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="Convert transformers or timm ViT weights to a vit_ft directory.")
    convert.add_argument("--from", dest="source", choices=["transformers", "timm"], required=True)
    convert.add_argument("--input", help="transformers ViT/DeiT directory or Hub id (--from transformers).")
    convert.add_argument("--timm_model", help="timm model name, e.g. vit_base_patch16_224 (--from timm).")
    convert.add_argument("--weights", help="timm weights: .safetensors, .pth or .bin (--from timm).")
    convert.add_argument("--image_mean", type=float, nargs=3, help="Override the normalisation mean (--from timm).")
    convert.add_argument("--image_std", type=float, nargs=3, help="Override the normalisation std (--from timm).")
    convert.add_argument("--output", required=True, help="Directory to write the vit_ft model to.")
    convert.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    convert.set_defaults(handler=_convert)

    train = commands.add_parser(
        "train", help="Train with a recipe: vit-ft train RECIPE.yaml [--field value ...].", add_help=False
    )
    train.add_argument("-h", "--help", action="store_true", help="List the fields a recipe sets, by group.")
    train.add_argument("--help_all", action="store_true", help="Also list all of transformers' TrainingArguments.")
    train.add_argument(
        "recipe", nargs="?", help="YAML recipe: model, data, augmentation, LoRA, distillation, Hub, training fields."
    )
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="--field value flags that override the recipe.")
    train.set_defaults(handler=_train)

    pretrain = commands.add_parser(
        "pretrain",
        help="Pretrain an encoder by masked autoencoding (MAE) on unlabelled images: vit-ft pretrain "
        "RECIPE.yaml [--field value ...].",
        add_help=False,
    )
    pretrain.add_argument("-h", "--help", action="store_true", help="List the fields a recipe sets, by group.")
    pretrain.add_argument("--help_all", action="store_true", help="Also list all of transformers' TrainingArguments.")
    pretrain.add_argument("recipe", nargs="?", help="YAML recipe: model, data, masked_autoencoding, Hub, training.")
    pretrain.add_argument("overrides", nargs=argparse.REMAINDER, help="--field value flags that override the recipe.")
    pretrain.set_defaults(handler=_pretrain)

    # The data options are DataArguments' own, as in `vit-ft train` recipes.
    data_options = HfArgumentParser(DataArguments, add_help=False)
    evaluate = commands.add_parser(
        "evaluate",
        help="Metrics of a saved model on a data split, clean and under image corruptions.",
        parents=[data_options],
    )
    evaluate.add_argument(
        "--model", required=True, help="vit_ft model, LoRA adapter or `vit-ft export` directory to evaluate."
    )
    evaluate.add_argument("--base_model", help=_BASE_MODEL_HELP)
    evaluate.add_argument("--onnx_file", help=_ONNX_FILE_HELP)
    evaluate.add_argument("--split", default="test", help="train, validation or test (default: test).")
    evaluate.add_argument(
        "--corruptions", help="Comma-separated gaussian_noise,gaussian_blur,jpeg,low_resolution, or `all`."
    )
    evaluate.add_argument(
        "--severity",
        type=_severities,
        default=[3],
        help="Corruption severity 1..5, or several separated by commas (1,2,3,4,5): then robustness_SPLIT.png too.",
    )
    evaluate.add_argument("--seed", type=int, default=0, help="Seed of the corruption noise (default: 0).")
    evaluate.add_argument("--batch_size", type=int, default=64, help="Evaluation batch size (default: 64).")
    evaluate.add_argument(
        "--output",
        help="JSON file to write; default MODEL/robustness_SPLIT.json or MODEL/eval_SPLIT.json (with --onnx_file "
        "FILE other than model.onnx: MODEL/eval_SPLIT_FILESTEM.json).",
    )
    evaluate.add_argument(
        "--overwrite", action="store_true", help="Replace the results (and plot) of an earlier evaluate in --output."
    )
    evaluate.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    # Checked by the library, not by argparse `choices`: a wrong value stops in one line that names the flag.
    evaluate.add_argument(
        "--label_matching",
        default="auto",
        help="How the model's classes are matched to the data's: auto (default: by name, or by position where the "
        "dataset made a name the model repeats unique, as ImageNet's crane/crane2), name or index (by position).",
    )
    evaluate.set_defaults(handler=_evaluate)

    shard = commands.add_parser(
        "shard",
        help="Write a data set (image folders, a Hub dataset, a built-in one) into webdataset or parquet shards.",
        # Its own copy of the data options: set_defaults below changes the parent's actions, which evaluate shares.
        parents=[HfArgumentParser(DataArguments, add_help=False)],
    )
    shard.add_argument("--output_dir", required=True, help="A new folder for the shards and their shards.json.")
    shard.add_argument("--format", choices=["webdataset", "parquet"], default="webdataset", help="Shard format.")
    shard.add_argument("--shard_size", type=int, default=10_000, help="Examples per shard (the last holds the rest).")
    shard.add_argument("--seed", type=int, default=0, help="Seed of the order the examples are written in.")
    # The source's splits as they are: no validation split is carved from train unless asked.
    shard.set_defaults(handler=_shard, train_val_split=0.0)

    knn = commands.add_parser(
        "knn",
        help="k-NN accuracy of a model's frozen features (cosine, temperature-weighted votes, as DINO).",
        parents=[data_options],
    )
    _add_knn_arguments(knn)

    predict = commands.add_parser("predict", help="Top classes of a saved model for image files, one JSON line each.")
    predict.add_argument("--model", required=True, help="vit_ft model, LoRA adapter or `vit-ft export` directory.")
    predict.add_argument("--base_model", help=_BASE_MODEL_HELP)
    predict.add_argument("--onnx_file", help=_ONNX_FILE_HELP)
    predict.add_argument("images", nargs="+", help="Image files to classify.")
    predict.add_argument("--top_k", type=int, default=5, help="Classes to list per image (default: 5).")
    predict.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    predict.set_defaults(handler=_predict)

    explain = commands.add_parser(
        "explain",
        help="Heat maps of what a saved model relies on in image files, one PNG per image; with --faithfulness, how "
        "fast its probability falls as the maps' patches are removed from a data set's images.",
        parents=[data_options],
    )
    explain.add_argument("--model", required=True, help="vit_ft model or LoRA adapter directory.")
    explain.add_argument("--base_model", help=_BASE_MODEL_HELP)
    explain.add_argument("images", nargs="*", help="Image files to explain.")
    explain.add_argument(
        "--output",
        help="Folder to write the PNGs to; with --faithfulness the JSON file (default: "
        "MODEL/faithfulness_SPLIT.json).",
    )
    # Checked by the library, not by argparse `choices`: an unknown method then stops in one line, as other errors.
    explain.add_argument(
        "--method",
        help=f"{DEFAULT_METHOD} (default: evidence for a class), transformer_attribution and gradient_rollout "
        "(class-specific too), rollout or last_layer (where information flows). With --faithfulness: several "
        "separated by commas, or all (default).",
    )
    explain.add_argument("--label", help="Class name the class-specific methods explain (default: the predicted one).")
    explain.add_argument("--top_k", type=int, default=3, help="Predicted classes to list per image (default: 3).")
    explain.add_argument(
        "--faithfulness",
        action="store_true",
        help="Deletion curves on a data split instead of pictures: the predicted class's probability as each map's "
        "patches are replaced by the image's mean colour, most relevant first, against a random order.",
    )
    explain.add_argument("--split", default="test", help="With --faithfulness: train, validation or test (default).")
    explain.add_argument("--seed", type=int, default=0, help="With --faithfulness: seed of the random order.")
    explain.add_argument("--batch_size", type=int, default=32, help="With --faithfulness: images per batch (32).")
    explain.add_argument(
        "--overwrite", action="store_true", help="With --faithfulness: replace an earlier result in --output."
    )
    explain.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    explain.set_defaults(handler=_explain)

    merge = commands.add_parser("merge-lora", help="Merge a LoRA adapter into its base: one plain vit_ft model.")
    merge.add_argument("--adapter", required=True, help="LoRA adapter directory (output of a peft_method: lora run).")
    merge.add_argument("--output", required=True, help="Directory to write the merged vit_ft model to.")
    merge.add_argument("--base_model", help=_BASE_MODEL_HELP)
    merge.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    merge.set_defaults(handler=_merge_lora)
    export = commands.add_parser(
        "export", help="Export a model or LoRA adapter to ONNX (optionally int8) for ONNX Runtime and transformers.js."
    )
    _add_export_arguments(export)
    push = commands.add_parser(
        "push", help="Upload a model or LoRA adapter directory to the Hugging Face Hub, with its model card."
    )
    _add_push_arguments(push)
    demo = commands.add_parser(
        "demo", help="Serve a Gradio page to try a model on images: top classes, attention map, corruptions."
    )
    _add_demo_arguments(demo)
    return parser


def _add_knn_arguments(knn: argparse.ArgumentParser) -> None:
    knn.add_argument("--model", required=True, help="vit_ft model, LoRA adapter or transformers ViT/MAE directory.")
    knn.add_argument("--k", type=int, default=20, help="Neighbours that vote (default: 20, as DINO).")
    knn.add_argument(
        "--temperature", type=float, default=0.07, help="Votes weigh exp(cosine / T) (default: 0.07, as DINO)."
    )
    knn.add_argument("--split", default="test", help="validation or test (default: test); train holds the neighbours.")
    knn.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Seed of the validation carve and of --train_samples_per_class's draw: a run's seed gives its images.",
    )
    knn.add_argument("--batch_size", type=int, default=256, help="Batch size of feature extraction (default: 256).")
    knn.add_argument("--output", help="JSON file to write; default MODEL/knn_SPLIT.json.")
    knn.add_argument("--overwrite", action="store_true", help="Replace the result of an earlier knn in --output.")
    knn.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    knn.set_defaults(handler=_knn)


def _add_export_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument("--model", required=True, help="vit_ft model or LoRA adapter directory (merged first).")
    export.add_argument(
        "--output", required=True, help="New or empty folder to write onnx/model.onnx and its configs to."
    )
    export.add_argument(
        "--overwrite", action="store_true", help="Replace the earlier export --output holds, as a whole."
    )
    export.add_argument("--quantize", choices=QUANTIZATIONS, help="Also write onnx/model_quantized.onnx.")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET}).")
    export.add_argument("--base_model", help=_BASE_MODEL_HELP)
    export.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    export.set_defaults(handler=_export)


def _demo(args: argparse.Namespace) -> None:
    from .demo.app import serve_demo

    serve_demo(args.model, args.onnx_file, args.host, args.port, args.base_model, args.trust_remote_code)


def _add_demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument(
        "--model", required=True, help="vit_ft model or LoRA adapter directory, Hub id, or `vit-ft export` directory."
    )
    demo.add_argument("--onnx_file", help=_ONNX_FILE_HELP)
    demo.add_argument("--base_model", help=_BASE_MODEL_HELP)
    demo.add_argument("--port", type=int, help="Port to serve on (default: the first free one from 7860).")
    demo.add_argument(
        "--host", default="127.0.0.1", help="Address to listen on (default: 127.0.0.1; 0.0.0.0 for other machines)."
    )
    demo.add_argument("--trust_remote_code", action="store_true", help=_TRUST_REMOTE_CODE_HELP)
    demo.set_defaults(handler=_demo)


def _push(args: argparse.Namespace) -> None:
    from .hub.push import push_model
    from .hub.space import space_repo_id

    commit = push_model(
        args.model,
        args.repo_id,
        args.private,
        args.revision,
        args.commit_message,
        args.license,
        args.with_onnx,
        args.with_demo,
    )
    print(f"Pushed {args.model} to {commit.repo_url.url}: {commit.commit_url}")
    if args.with_demo:
        print(f"Pushed its Gradio demo to the Space {space_repo_id(commit.repo_url.repo_id)}")


def _add_push_arguments(push: argparse.ArgumentParser) -> None:
    push.add_argument("--model", required=True, help="Output directory of `vit-ft train` (a model or an adapter).")
    push.add_argument("--repo_id", required=True, help="Hub repo: `name` (in your namespace) or `namespace/name`.")
    push.add_argument(
        "--private", action="store_true", default=None, help="Create the repo private (an existing one is kept)."
    )
    push.add_argument("--revision", help="Branch to push to, created if missing (default: main).")
    push.add_argument("--commit_message", help="Message of the commit (default: Upload with vit-ft push).")
    push.add_argument("--license", help="Hub license id for the card, e.g. apache-2.0; default: the recipe's.")
    push.add_argument(
        "--with_onnx", action="store_true", help="Export the model to ONNX (float32, int8) and upload its onnx/ too."
    )
    push.add_argument(
        "--with_demo",
        action="store_true",
        help="Also push a Gradio Space that demos the model (REPO_ID-demo), linked from the card.",
    )
    push.set_defaults(handler=_push)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(respell_flags(sys.argv[1:] if argv is None else argv))
    if not sys.stderr.isatty():
        _quiet_progress_bars()
    try:
        args.handler(args)
    except (ValueError, OSError, MissingExtraError) as error:
        if args.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
            raise
        sys.exit(f"vit-ft {args.command}: {error}")


def respell_flags(argv: list[str]) -> list[str]:
    """`argv` with each deprecated dashed flag (`--timm-model NAME`, `--image-mean=...`) in its underscore spelling."""
    respelt = []
    for argument in argv:
        flag, equals, value = argument.partition("=")
        if flag in DEPRECATED_SPELLINGS:
            print(f"vit-ft: {flag} is deprecated; use {DEPRECATED_SPELLINGS[flag]}.", file=sys.stderr)
            argument = DEPRECATED_SPELLINGS[flag] + equals + value
        respelt.append(argument)
    return respelt


def _quiet_progress_bars() -> None:
    """
    Turns off the progress bars of the libraries (loading and writing weights, datasets, downloads): they redraw
    themselves with carriage returns and escape codes, which pile up in a log file or a pipe.
    """
    import datasets
    import huggingface_hub
    import transformers

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    datasets.disable_progress_bars()


if __name__ == "__main__":
    main()
