"""Reading a recipe: a YAML file of argument fields, overridden by `--field value` flags, parsed by HfArgumentParser
into one argument group per feature and checked as a whole before any data or checkpoint is opened."""

import difflib
import enum
import sys
import textwrap
import types
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .checkpoints.arguments import ModelArguments
from .data.arguments import AugmentationArguments, DataArguments
from .hub.arguments import HubArguments
from .output_dir import ADAPTER_CONFIG, LATEST_CHECKPOINT, RECIPE, write_text
from .training.arguments import DistillationArguments, LoraArguments, ViTTrainingArguments


@dataclass
class Recipe:
    """The argument groups of one run, in the order `vit-ft train --help` lists them."""

    model: ModelArguments
    data: DataArguments
    augmentation: AugmentationArguments
    lora: LoraArguments
    distillation: DistillationArguments
    hub: HubArguments
    training: ViTTrainingArguments

    def __post_init__(self):
        check_recipe(self)

    @property
    def groups(self) -> tuple:
        return tuple(getattr(self, group.name) for group in fields(self))


def recipe_groups(recipe_class: type = Recipe) -> tuple[type, ...]:
    """The argument dataclasses of a recipe class (`Recipe`, or `vit-ft pretrain`'s), in its order."""
    return tuple(typing.get_type_hints(recipe_class)[group.name] for group in fields(recipe_class))


GROUPS = recipe_groups(Recipe)


def check_recipe(recipe: Recipe) -> None:
    """The checks that span groups: each group has checked its own fields already."""
    model, lora, distillation = recipe.model, recipe.lora, recipe.distillation
    if distillation.student_from_teacher and (model.model_name_or_path or model.preset):
        raise ValueError(
            "student_from_teacher builds the student from the teacher: unset model_name_or_path and preset."
        )
    if not distillation.student_from_teacher and bool(model.model_name_or_path) == bool(model.preset):
        raise ValueError(
            "Set one of model_name_or_path (a checkpoint to fine-tune) and preset (an architecture to "
            "train from scratch)."
        )
    if lora.enabled:
        if recipe.training.freeze_backbone:
            raise ValueError("freeze_backbone and peft_method: lora both choose what trains; set only one of them.")
        if distillation.student_from_teacher:
            raise ValueError(
                "peft_method: lora with student_from_teacher: the pruned student exists only in this "
                "run, so an adapter could not name its base. Train the student in full."
            )
        if not model.model_name_or_path:
            raise ValueError(
                "peft_method: lora adapts a trained model: set model_name_or_path (a preset has nothing "
                "to adapt; train it in full)."
            )
        if (Path(model.model_name_or_path) / ADAPTER_CONFIG).is_file():
            raise ValueError(
                f"{model.model_name_or_path} is a LoRA adapter: merge it first (vit-ft merge-lora "
                f"--adapter {model.model_name_or_path} --output DIR) and train the new adapter on the "
                "merged model."
            )
    if recipe.data.has_training_data:
        recipe.training.check_trains()


def _field_names(dataclasses=GROUPS) -> list[str]:
    return [f.name for dataclass in dataclasses for f in fields(dataclass) if f.init]


def _unknown_key_error(key: str, source: str, names: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else " See `vit-ft train --help` for the fields."
    return ValueError(f"Unknown field {key!r} in {source}.{hint}")


# The argument groups `vit-ft train --help` lists, by Recipe field, in the Recipe's order; the fields
# ViTTrainingArguments inherits from transformers' TrainingArguments come last, under TRAINER_GROUP.
GROUP_TITLES = {
    "model": "model (the checkpoint or architecture a run starts from)",
    "data": "data (the dataset and its splits)",
    "augmentation": "augmentation (random changes to training images and batches)",
    "lora": "lora (LoRA adapters, with peft)",
    "distillation": "distillation (a teacher to learn from)",
    "masked_autoencoding": "masked_autoencoding (MAE: masking, decoder, augmentation)",
    "hub": "hub (what the Hub shows of the model)",
    "training": "training (vit-ft's own fields)",
}
TRAINER_GROUP = "training (transformers' TrainingArguments)"
# The fields ViTTrainingArguments takes from TrainingArguments as they are (it redeclares a few with new defaults).
_INHERITED_FIELDS = frozenset(
    name for name in _field_names((ViTTrainingArguments,)) if name not in vars(ViTTrainingArguments)["__annotations__"]
)
# The TrainingArguments fields `vit-ft train --help` lists; `--help_all` lists all of them.
COMMON_TRAINER_FIELDS = (
    "output_dir",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "weight_decay",
    "lr_scheduler_type",
    "warmup_steps",
    "label_smoothing_factor",
    "eval_strategy",
    "eval_steps",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "load_best_model_at_end",
    "logging_steps",
    "seed",
    "bf16",
    "use_cpu",
    "dataloader_num_workers",
    "resume_from_checkpoint",
    "disable_tqdm",
    "report_to",
    "push_to_hub",
    "hub_model_id",
)


class RecipeParser(HfArgumentParser):
    """HfArgumentParser over a recipe's groups (`Recipe`, or `vit-ft pretrain`'s), whose errors are one line (a
    ValueError) instead of the usage text and an exit."""

    def __init__(self, recipe_class: type = Recipe, **kwargs):
        super().__init__(recipe_groups(recipe_class), **kwargs)

    def error(self, message: str):
        raise ValueError(f"the command line: {message}. See `vit-ft train --help` for the fields.")


TRAIN_USAGE = "vit-ft train RECIPE.yaml [--field value ...]"
_HELP_WIDTH, _NAME_WIDTH = 80, 32  # the terminal's usual width; the longest field name fits before its help


def recipe_help(full: bool = False, recipe_class: type = Recipe, usage: str = TRAIN_USAGE) -> str:
    """
    `vit-ft train --help`: the fields of each recipe group, vit-ft's first, each with its help; the most used of
    transformers' TrainingArguments after them, or all of them when `full` (`--help_all`). `recipe_class` and `usage`
    give another command's (`vit-ft pretrain`). Written from the dataclasses' fields, one name per field.
    """
    description = (
        "The fields a recipe sets (field: value), by group. A flag (--field value) after the recipe "
        "overrides its value; --field None unsets it. --help lists the most used of transformers' "
        "TrainingArguments, --help_all every one."
    )
    sections = [f"usage: {usage}", textwrap.fill(description, _HELP_WIDTH)]
    for group, dtype in zip(fields(recipe_class), recipe_groups(recipe_class)):
        trainer = dtype is ViTTrainingArguments
        own = [field for field in fields(dtype) if field.init and not (trainer and field.name in _INHERITED_FIELDS)]
        sections.append(_help_section(GROUP_TITLES[group.name], own))
        if trainer:
            shown = _INHERITED_FIELDS if full else COMMON_TRAINER_FIELDS
            sections.append(_help_section(TRAINER_GROUP, [field for field in fields(dtype) if field.name in shown]))
    if not full:
        hidden = len(_INHERITED_FIELDS) - len(COMMON_TRAINER_FIELDS)
        sections.append(
            f"{hidden} more fields of transformers' TrainingArguments: {usage.split(' RECIPE', 1)[0]} --help_all."
        )
    return "\n\n".join(sections) + "\n"


def _help_section(title: str, group_fields: list) -> str:
    """`title:` and one entry per field: `--name`, then its help and default, wrapped beside it."""
    lines = [f"{title}:"]
    for field in group_fields:
        text = " ".join(field.metadata.get("help", "").split())
        default = field.default.value if isinstance(field.default, enum.Enum) else field.default
        if default is not MISSING and default is not None:
            text = f"{text} (default: {default})".strip()
        name = f"  --{field.name}"
        if len(name) >= _NAME_WIDTH:  # a name too long to share its line with the help
            lines.append(name)
            name = ""
        wrapped = textwrap.wrap(text, _HELP_WIDTH - _NAME_WIDTH) or [""]
        lines += [name.ljust(_NAME_WIDTH) + wrapped[0], *(" " * _NAME_WIDTH + line for line in wrapped[1:])]
    return "\n".join(line.rstrip() for line in lines)


def read_recipe(
    path: str | Path | None,
    overrides: list[str] | None = None,
    defaults: dict | None = None,
    recipe_class: type = Recipe,
):
    """
    Parses the recipe at `path` (YAML) and the `overrides` flags (`--field value`, later wins) into a checked
    `recipe_class` (`Recipe` unless given); `defaults` replace the fields' own defaults where neither sets them. An
    unknown key, in the file or the flags, is an error naming it and the closest valid field; a value of the wrong type
    is an error naming the file, the field and the type it needs.
    """
    groups = recipe_groups(recipe_class)
    names = _field_names(groups)
    types = {name: hint for group in groups for name, hint in typing.get_type_hints(group).items()}
    recipe = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Recipe {path} does not exist.")
        try:
            recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"Recipe {path} is not valid YAML: {' '.join(str(error).split())}") from error
        if not isinstance(recipe, dict):
            raise ValueError(f"Recipe {path} must be a mapping of field: value, not {type(recipe).__name__}.")
        for key in recipe:
            if key not in names:
                raise _unknown_key_error(key, str(path), names)
        recipe = {key: _as_field_type(value, key, str(path), types) for key, value in recipe.items()}
    overrides = list(overrides or [])
    for flag in overrides:
        if flag.startswith("--") and flag[2:].split("=", 1)[0] not in names:
            raise _unknown_key_error(flag[2:].split("=", 1)[0], "the command line", names)
    overrides, unset = _pop_null_flags(overrides)
    parser = RecipeParser(recipe_class=recipe_class)
    # The file's values become the parser's defaults, keeping their YAML types (lists, mappings, null); flags parse
    # over them.
    parser.set_defaults(**{**(defaults or {}), **recipe, **unset})
    return recipe_class(*parser.parse_args_into_dataclasses(args=overrides, look_for_args_file=False))


_YAML_BOOLEAN_HINT = "YAML reads unquoted yes/no/on/off/true/false as booleans; write the value in quotes, e.g. 'no'."


class _Mismatch(Exception):
    """A value does not fit a type."""


def _as_field_type(value, name: str, source: str, types: dict):
    """`value` converted to the declared type `types[name]` of field `name`, or a one-line ValueError naming both."""
    if name == "resume_from_checkpoint" and value is True:
        # YAML reads `resume_from_checkpoint: true` as a boolean; the Trainer's field is a path, and true means latest.
        return LATEST_CHECKPOINT[0]
    try:
        return _convert(value, types[name])
    except _Mismatch:
        hint = f" {_YAML_BOOLEAN_HINT}" if isinstance(value, bool) else ""
        raise ValueError(
            f"{source}: {name} is {value!r} ({type(value).__name__}), but it takes {_describe(types[name])}.{hint}"
        ) from None


def _members(annotation) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _convert(value, annotation):
    """Tries the members of `annotation` exactly first, then with the conversions a YAML user means."""
    members = _members(annotation)
    for strict in (True, False):
        for member in members:
            try:
                return _convert_to(value, member, strict)
            except _Mismatch:
                continue
    raise _Mismatch


def _convert_to(value, kind, strict: bool):
    origin = typing.get_origin(kind)
    if kind is typing.Any:
        return value
    if kind is type(None):
        if value is None:
            return None
    elif kind is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif kind in (int, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if kind is float:
                return float(value)
            if isinstance(value, int) or (not strict and value.is_integer()):
                return int(value)
        if not strict and isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
        if not strict and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        choices = [member.value for member in kind]
        if isinstance(value, str) and value in choices:
            return value
        if not strict and value is False and "no" in choices:  # YAML's unquoted `no` or `off`
            return "no"
    elif origin is typing.Literal:
        if value in typing.get_args(kind):
            return value
    elif kind is dict or origin is dict:
        if isinstance(value, dict):
            return value
    elif kind is list or origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(kind) or (typing.Any,)
            return [_convert(element, item) for element in value]
    elif isinstance(kind, type):
        if isinstance(value, kind):
            return value
    raise _Mismatch


def _describe(annotation) -> str:
    """The type a field takes, in words."""
    words = []
    members = _members(annotation)
    # transformers types its enum fields `SomeEnum | str` for argparse: the enum's values are what it takes.
    if any(isinstance(member, type) and issubclass(member, enum.Enum) for member in members):
        members = tuple(member for member in members if member is not str)
    for member in members:
        origin = typing.get_origin(member)
        if member is type(None):
            words.append("null")
        elif member is bool:
            words.append("true or false")
        elif member is int:
            words.append("an integer")
        elif member is float:
            words.append("a number")
        elif member is str:
            words.append("text")
        elif isinstance(member, type) and issubclass(member, enum.Enum):
            words.append("one of " + ", ".join(repr(choice.value) for choice in member))
        elif member is dict or origin is dict:
            words.append("a mapping")
        elif member is list or origin is list:
            words.append("a list")
        elif origin is typing.Literal:
            words.append(" or ".join(repr(choice) for choice in typing.get_args(member)))
        else:
            words.append(getattr(member, "__name__", str(member)))
    return " or ".join(dict.fromkeys(words))


def _pop_null_flags(flags: list[str]) -> tuple[list[str], dict]:
    """
    Keeps the last of repeated flags, and takes `--field None` (or null) out as an unset field: argparse alone would
    reject None for numbers, and a default could not override an earlier flag.
    """
    groups: dict[str, list[str]] = {}
    for flag in flags:
        if flag.startswith("--") or not groups:
            name = flag[2:].partition("=")[0]
            groups.pop(name, None)  # a repeated flag moves to the end, replacing the earlier one
            groups[name] = [flag]
        else:
            groups[next(reversed(groups))].append(flag)
    kept, unset = [], {}
    for name, group in groups.items():
        inline = group[0].partition("=")[2]
        values = [inline] if inline else group[1:]
        if values in (["None"], ["null"]):
            unset[name] = None
        else:
            kept.extend(group)
    return kept, unset


def save_resolved_recipe(recipe, output_dir: str | Path) -> Path:
    """Writes every field's final value to `output_dir/vit_ft_recipe.yaml`, with the command that ran."""
    resolved = {}
    for arguments in recipe.groups:
        values = arguments.to_dict() if hasattr(arguments, "to_dict") else asdict(arguments)
        resolved.update({key: value for key, value in values.items() if key in _field_names((type(arguments),))})
    header = f"# Resolved configuration of: {' '.join(sys.argv)}\n"
    return write_text(Path(output_dir) / RECIPE, header + yaml.safe_dump(_plain(resolved), sort_keys=True))


def _plain(value):
    """Enums and other objects as YAML-safe values."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "value", str(value))
