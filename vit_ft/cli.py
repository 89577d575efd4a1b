"""The `vit-ft` command."""

import argparse
import sys


def _convert(args: argparse.Namespace) -> None:
    from .convert import convert_timm, convert_transformers

    if args.source == "transformers":
        if not args.input:
            sys.exit("vit-ft convert --from transformers needs --input DIR_OR_HUB_ID.")
        model = convert_transformers(args.input, args.output)
    else:
        if not (args.timm_model and args.weights):
            sys.exit("vit-ft convert --from timm needs --timm-model NAME and --weights FILE.")
        model = convert_timm(args.timm_model, args.weights, args.output, args.image_mean, args.image_std)
    params = sum(p.numel() for p in model.parameters())
    print(f"Wrote {type(model).__name__} ({params / 1e6:.2f}M parameters) to {args.output}")


def _train(args: argparse.Namespace) -> None:
    from .recipe import read_recipe
    from .training import run_training

    if args.recipe in ("-h", "--help"):
        from transformers import HfArgumentParser

        from .recipe import DATACLASSES

        HfArgumentParser(DATACLASSES).print_help()
        return
    run_training(*read_recipe(args.recipe, args.overrides))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vit-ft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="Convert transformers or timm ViT weights to a vit_ft directory.")
    convert.add_argument("--from", dest="source", choices=["transformers", "timm"], required=True)
    convert.add_argument("--input", help="transformers ViT/DeiT directory or Hub id (--from transformers).")
    convert.add_argument("--timm-model", help="timm model name, e.g. vit_base_patch16_224 (--from timm).")
    convert.add_argument("--weights", help="timm weights: .safetensors, .pth or .bin (--from timm).")
    convert.add_argument("--image-mean", type=float, nargs=3, help="Override the normalisation mean (--from timm).")
    convert.add_argument("--image-std", type=float, nargs=3, help="Override the normalisation std (--from timm).")
    convert.add_argument("--output", required=True, help="Directory to write the vit_ft model to.")
    convert.set_defaults(handler=_convert)

    train = commands.add_parser(
        "train", help="Train with a recipe: vit-ft train RECIPE.yaml [--field value ...].", add_help=False
    )
    train.add_argument("recipe", help="YAML recipe of ModelArguments, DataArguments and ViTTrainingArguments fields.")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="--field value flags that override the recipe.")
    train.set_defaults(handler=_train)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, OSError) as error:
        sys.exit(f"vit-ft {args.command}: {error}")


if __name__ == "__main__":
    main()
