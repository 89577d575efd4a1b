"""Speed of a masked-autoencoding (MAE) pretraining step: vit_ft against transformers, and against fine-tuning.

Four models, built once and timed in the same run:

- `vit_ft`: the `ViTForMaskedAutoencoding` that `vit-ft pretrain` builds for `--preset` from scratch
  (`vit_ft.pretrain.build_autoencoder` with `MaskedAutoencodingArguments` from the flags: mask ratio, decoder width,
  blocks, heads and MLP, `norm_pix_loss`; MAE's defaults).
- `transformers`: transformers' `ViTMAEForPreTraining` of the same configuration (every field that both configs have,
  read from vit_ft's), holding vit_ft's weights: the names are the same, the encoder's position table is vit_ft's
  (MAE's is fixed, `requires_grad=False`; vit-ft pretrain trains it, one tensor more for AdamW) and the decoder's fixed
  table is vit_ft's sine-cosine positions behind a zero class row (MAE's layout swaps the row and column halves).
  So both compute the same function: before timing, the script checks that they mask the same patches and
  reconstruct the same pixels.
- `transformers_control`: a copy of `transformers`. transformers / transformers_control is the spread of two identical
  models measured the same way: the noise floor of every ratio.
- `fine_tuning`: vit_ft's `ViTForImageClassification` of the same preset (1,000 classes, as `vit-ft train` builds it
  from scratch) holding the same encoder weights, on every token (1 + patches) rather than the kept quarter.

All get the same images and, the MAE models, the same `noise` (uniform, seeded), so they mask the same patches; the
script checks that the first encoder block of each MAE model receives 1 + int(patches x (1 - mask ratio)) tokens and
the classifier's 1 + patches. A training step is forward and the model's own loss (MAE's reconstruction error on the
masked patches; cross-entropy for the classifier) under the autocast of `--dtype`, backward, `torch.optim.AdamW.step()`
and `zero_grad(set_to_none=True)`. After `--warmup` untimed steps of each model, `--rounds` rounds each time `--steps`
steps of every model, the order rotating from round to round so that drift (thermal, clocks, other processes) hits all
alike (`benchmark_common.measure_interleaved`). Throughput is batch / the median over the rounds of the time per step.
Each ratio is given from those medians and, for its spread, per round (min-max): a ratio is a difference only where its
rounds clear the control's. Goals: vit_ft / transformers >= 1.0 within the control's spread; at mask ratio 0.75 for
ViT-B/16, pretraining / fine-tuning >= 2.5.

FLOPs per image (forward, matrix products as `benchmark_model.flops_per_image` counts them) are printed for the
pretraining and the fine-tuning model: their ratio is where the speed ratio lands when time follows the arithmetic.
For ViT-B/16 with MAE's decoder (512 wide, 8 blocks) it is 35.1 / 19.6 = 1.80: the 8 decoder blocks on all 197
tokens cost more than the 12 encoder blocks on 50.

The command for the reported numbers (2 CPU cores, nothing else running; about 3 to 4 minutes):

    python scripts/benchmark_pretrain.py --output pretrain.json

Quick smoke test: `--preset vit_tiny_patch16_224 --decoder-hidden-size 64 --decoder-num-hidden-layers 1
--decoder-num-attention-heads 4 --decoder-intermediate-size 128 --batch-size 2 --rounds 2 --steps 1 --warmup 1`.
"""

import argparse
import copy
import json
import os
import statistics
from dataclasses import asdict, dataclass, field

import torch
import transformers
from benchmark_common import (
    ATTN_IMPLEMENTATION,
    Step,
    blocks_macs,
    check_attention,
    check_preset,
    machine_info,
    make_optimizer,
    make_training_step,
    measure_interleaved,
    preset_model,
    seed_everything,
    warm_up,
)
from torch import nn
from transformers.utils import ModelOutput

from vit_ft import PRESETS, ViTConfig, ViTForMaskedAutoencoding
from vit_ft.checkpoints.arguments import ModelArguments
from vit_ft.checkpoints.loading import parameter_counts
from vit_ft.model.modeling_vit_ft import sincos_position_embeddings
from vit_ft.pretrain import build_autoencoder
from vit_ft.pretraining.arguments import MaskedAutoencodingArguments

NUM_LABELS = 1000
CONTROL = "transformers_control"
PRETRAINING = ("vit_ft", "transformers", CONTROL)
FINE_TUNING = "fine_tuning"
# Each ratio is the images/s of the first over the second.
RATIOS = {
    "vit_ft/transformers": ("vit_ft", "transformers"),
    f"transformers/{CONTROL}": ("transformers", CONTROL),
    f"pretraining/{FINE_TUNING}": ("vit_ft", FINE_TUNING),
}
GOALS = {"vit_ft/transformers": ">= 1.0 within the control's spread", f"pretraining/{FINE_TUNING}": ">= 2.5"}
# vit_ft config fields that transformers' ViTMAEConfig has under the same name and meaning.
_SHARED_CONFIG_FIELDS = (
    "image_size",
    "patch_size",
    "num_channels",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "qkv_bias",
    "layer_norm_eps",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "initializer_range",
    "mask_ratio",
    "decoder_hidden_size",
    "decoder_num_hidden_layers",
    "decoder_num_attention_heads",
    "decoder_intermediate_size",
    "norm_pix_loss",
)
_CHECK_BATCH = 2  # images in the forward that checks tokens and losses before timing


@dataclass
class Result:
    """Seconds per step of every model in every round, and what follows from them."""

    batch: int
    step_s: dict[str, list[float]]
    page_faults: dict[str, float]
    images_per_s: dict[str, float] = field(init=False)
    # name -> {"value": from the median step times, "rounds": per round, "min", "max"}
    ratios: dict[str, dict] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.images_per_s = {name: self.batch / statistics.median(times) for name, times in self.step_s.items()}
        for ratio, (first, second) in RATIOS.items():
            rounds = [
                second_s / first_s for first_s, second_s in zip(self.step_s[first], self.step_s[second], strict=True)
            ]
            self.ratios[ratio] = {
                "value": self.images_per_s[first] / self.images_per_s[second],
                "rounds": rounds,
                "min": min(rounds),
                "max": max(rounds),
            }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    method = MaskedAutoencodingArguments()  # MAE's defaults, as vit-ft pretrain's
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vit_base_patch16_224", help="vit_ft preset (timm name) of the encoder.")
    parser.add_argument("--mask-ratio", type=float, default=method.mask_ratio, help="Share of patches masked.")
    parser.add_argument("--decoder-hidden-size", type=int, default=method.decoder_hidden_size)
    parser.add_argument("--decoder-num-hidden-layers", type=int, default=method.decoder_num_hidden_layers)
    parser.add_argument("--decoder-num-attention-heads", type=int, default=method.decoder_num_attention_heads)
    parser.add_argument("--decoder-intermediate-size", type=int, default=method.decoder_intermediate_size)
    parser.add_argument(
        "--norm-pix-loss",
        action=argparse.BooleanOptionalAction,
        default=method.norm_pix_loss,
        help="Normalised-pixel targets (MAE's default).",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="Images per step, for every model.")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16: autocast around forward and loss, weights stay float32.",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds; the median round is reported.")
    parser.add_argument("--steps", type=int, default=2, help="Steps per model in each round.")
    parser.add_argument("--warmup", type=int, default=1, help="Untimed steps per model.")
    parser.add_argument("--output", default=None, help="Write the results as JSON to this path.")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available.")
    if min(args.batch_size, args.rounds, args.steps) < 1 or args.warmup < 0:
        parser.error("--batch-size, --rounds and --steps must be at least 1, --warmup at least 0.")
    check_preset(args.preset, parser)
    try:  # the decoder's limits, as vit-ft pretrain checks a recipe's before building anything
        ViTConfig(**{**PRESETS[args.preset], **masked_autoencoding(args).config_fields}).check_masked_autoencoding()
    except ValueError as error:
        parser.error(str(error))
    return args


def masked_autoencoding(args: argparse.Namespace) -> MaskedAutoencodingArguments:
    return MaskedAutoencodingArguments(
        mask_ratio=args.mask_ratio,
        decoder_hidden_size=args.decoder_hidden_size,
        decoder_num_hidden_layers=args.decoder_num_hidden_layers,
        decoder_num_attention_heads=args.decoder_num_attention_heads,
        decoder_intermediate_size=args.decoder_intermediate_size,
        norm_pix_loss=args.norm_pix_loss,
    )


def build_vit_ft(args: argparse.Namespace) -> ViTForMaskedAutoencoding:
    seed_everything()
    model, _ = build_autoencoder(ModelArguments(preset=args.preset), masked_autoencoding(args))
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    return model


def build_transformers(source: ViTForMaskedAutoencoding) -> transformers.ViTMAEForPreTraining:
    """transformers' MAE of `source`'s configuration, holding `source`'s weights (see the module's docstring)."""
    fields = {name: getattr(source.config, name) for name in _SHARED_CONFIG_FIELDS}
    # On the config before construction: the decoder's blocks copy it then.
    config = transformers.ViTMAEConfig(**fields, attn_implementation=ATTN_IMPLEMENTATION)
    model = transformers.ViTMAEForPreTraining(config)
    grid = (config.image_size // config.patch_size,) * 2
    positions = sincos_position_embeddings(grid, config.decoder_hidden_size)  # (1, patches, decoder_hidden)
    weights = source.state_dict()
    weights["decoder.decoder_pos_embed"] = torch.cat([positions.new_zeros(1, 1, positions.shape[-1]), positions], 1)
    model.load_state_dict(weights, strict=True)  # every name and shape the same, or this raises naming them
    return model


def build_fine_tuning(args: argparse.Namespace, source: ViTForMaskedAutoencoding) -> nn.Module:
    """vit_ft's classifier of the preset, as `vit-ft train` builds it, with `source`'s encoder weights."""
    model, _ = preset_model(args.preset, NUM_LABELS)
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    model.vit.load_state_dict(source.vit.state_dict(), strict=True)
    return model


def build_models(args: argparse.Namespace, device: torch.device) -> dict[str, nn.Module]:
    vit_ft = build_vit_ft(args)
    reference = build_transformers(vit_ft)
    models = {
        "vit_ft": vit_ft,
        "transformers": reference,
        CONTROL: copy.deepcopy(reference),
        FINE_TUNING: build_fine_tuning(args, vit_ft),
    }
    for name, model in models.items():
        check_attention(model, name)
        model.to(device).train()
    return models


def make_inputs(config: ViTConfig, batch: int, device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    """Each model's keyword inputs: the same pixels for all, the same noise for the MAE models, labels otherwise."""
    seed_everything()
    size, patches = config.image_size, (config.image_size // config.patch_size) ** 2
    pixels = torch.randn(batch, config.num_channels, size, size, device=device)
    noise = torch.rand(batch, patches, device=device)  # the patches of least noise stay visible
    labels = torch.randint(0, NUM_LABELS, (batch,), device=device)
    inputs = {name: {"pixel_values": pixels, "noise": noise} for name in PRETRAINING}
    inputs[FINE_TUNING] = {"pixel_values": pixels, "labels": labels}
    return inputs


def encoder_tokens_and_output(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[int, ModelOutput]:
    """The tokens the first encoder block receives, and the model's output, in one forward without gradients."""
    tokens = []

    def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
        tokens.append((args[0] if args else kwargs["hidden_states"]).shape[1])  # (batch, tokens, hidden)

    handle = model.vit.layers[0].register_forward_pre_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            output = model(**inputs)
    finally:
        handle.remove()
    return tokens[0], output


def check_models(models: dict[str, nn.Module], inputs: dict[str, dict[str, torch.Tensor]], config: ViTConfig) -> None:
    """
    Before timing: the MAE encoders see the class token and the kept patches only, the classifier every patch; and
    vit_ft and transformers, holding the same weights and noise, mask the same patches and reconstruct the same
    pixels (float32, no autocast; on the CPU they agree to the bit).
    """
    patches = (config.image_size // config.patch_size) ** 2
    expected = dict.fromkeys(PRETRAINING, 1 + int(patches * (1 - config.mask_ratio))) | {FINE_TUNING: 1 + patches}
    outputs = {}
    for name, model in models.items():
        sample = {key: value[:_CHECK_BATCH] for key, value in inputs[name].items()}
        tokens, outputs[name] = encoder_tokens_and_output(model, sample)
        assert tokens == expected[name], f"{name}'s encoder receives {tokens} tokens, not {expected[name]}"
    for name in ("transformers", CONTROL):
        assert torch.equal(outputs["vit_ft"].mask, outputs[name].mask), f"vit_ft and {name} mask other patches"
        torch.testing.assert_close(outputs["vit_ft"].logits, outputs[name].logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(outputs["vit_ft"].loss, outputs[name].loss, rtol=1e-5, atol=1e-6)


def forward_flops_per_image(config: ViTConfig) -> dict[str, float]:
    """
    FLOPs of one image's forward (2 per multiply-add of the matrix products) through vit_ft's pretraining model and
    the fine-tuning one. Every patch is embedded, masked ones too; the encoder then runs on the class token and the
    kept patches, the decoder on the class token and every patch, and predicts every patch's pixels.
    """
    patches = (config.image_size // config.patch_size) ** 2
    kept = int(patches * (1 - config.mask_ratio))
    width, pixels = config.hidden_size, config.num_channels * config.patch_size**2
    decoder_width = config.decoder_hidden_size
    embedding = patches * pixels * width
    encoder = (config.num_hidden_layers, config.intermediate_size)
    decoder = (
        (1 + kept) * width * decoder_width  # decoder_embed
        + blocks_macs(1 + patches, decoder_width, config.decoder_num_hidden_layers, config.decoder_intermediate_size)
        + patches * decoder_width * pixels
    )  # decoder_pred
    pretraining = embedding + blocks_macs(1 + kept, width, *encoder) + decoder
    fine_tuning = embedding + blocks_macs(1 + patches, width, *encoder) + width * NUM_LABELS
    return {"pretraining": 2.0 * pretraining, FINE_TUNING: 2.0 * fine_tuning}


def make_steps(
    models: dict[str, nn.Module], inputs: dict[str, dict[str, torch.Tensor]], dtype: str, device: torch.device
) -> dict[str, Step]:
    def loss_of(model: nn.Module, model_inputs: dict[str, torch.Tensor]):
        return lambda: model(**model_inputs).loss  # each model's own loss

    return {
        name: make_training_step(make_optimizer(model), loss_of(model, inputs[name]), device, dtype == "bfloat16")
        for name, model in models.items()
    }


def describe(args: argparse.Namespace) -> str:
    return (
        f"{args.preset}, mask ratio {args.mask_ratio}, decoder {args.decoder_hidden_size} wide x "
        f"{args.decoder_num_hidden_layers} blocks, {args.decoder_num_attention_heads} heads, MLP "
        f"{args.decoder_intermediate_size}, norm_pix_loss {args.norm_pix_loss}; batch {args.batch_size}, "
        f"{args.dtype}, {args.device}; {args.rounds} rounds of {args.steps} steps"
    )


def markdown_table(result: Result) -> str:
    lines = ["| model | images/s (median step) | per round |", "|---|---|---|"]
    for name, times in result.step_s.items():
        rounds = ", ".join(f"{result.batch / seconds:.2f}" for seconds in times)
        lines.append(f"| {name} | {result.images_per_s[name]:.2f} | {rounds} |")
    return "\n".join(lines)


def ratio_lines(result: Result, flops: dict[str, float]) -> list[str]:
    lines = []
    for name, ratio in result.ratios.items():
        goal = f" (goal {GOALS[name]})" if name in GOALS else " (control: the noise of a ratio)"
        lines.append(f"{name}: {ratio['value']:.3f}, rounds {ratio['min']:.3f}-{ratio['max']:.3f}{goal}")
    lines.append(
        f"forward GFLOPs per image: pretraining {flops['pretraining'] / 1e9:.2f}, fine-tuning "
        f"{flops[FINE_TUNING] / 1e9:.2f}; ratio {flops[FINE_TUNING] / flops['pretraining']:.3f}"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    transformers.utils.logging.set_verbosity_error()
    device = torch.device(args.device)
    hardware = machine_info(device, transformers=transformers.__version__)
    print(json.dumps(hardware, indent=2), flush=True)

    models = build_models(args, device)
    config = models["vit_ft"].config
    parameters = {name: dict(zip(("total", "trainable"), parameter_counts(model))) for name, model in models.items()}
    print(f"parameters: {parameters}", flush=True)
    inputs = make_inputs(config, args.batch_size, device)
    check_models(models, inputs, config)
    steps = make_steps(models, inputs, args.dtype, device)
    warm_up(steps, args.warmup, device)
    times, faults = measure_interleaved(steps, args.rounds, args.steps, device)
    result = Result(args.batch_size, times, faults)
    flops = forward_flops_per_image(config)

    if hasattr(os, "getloadavg"):
        hardware["load_average_end"] = os.getloadavg()
    print(f"\n{describe(args)}\n\n{markdown_table(result)}\n")
    print("\n".join(ratio_lines(result, flops)))
    if args.output:
        output = {
            "hardware": hardware,
            "settings": vars(args),
            "parameters": parameters,
            "forward_flops_per_image": flops,
            "result": asdict(result),
        }
        with open(args.output, "w") as file:
            json.dump(output, file, indent=2)
        print(f"\nWrote {args.output}")


if __name__ == "__main__":
    main()
