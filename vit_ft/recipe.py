"""Reading a recipe: a YAML file of dataclass fields, overridden by `--field value` flags, parsed by
HfArgumentParser into (ModelArguments, DataArguments, ViTTrainingArguments)."""

import difflib
import sys
from dataclasses import asdict, fields
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from .arguments import DataArguments, ModelArguments, ViTTrainingArguments
from .output_dir import RECIPE, write_text

DATACLASSES = (ModelArguments, DataArguments, ViTTrainingArguments)


def _field_names(dataclasses=DATACLASSES) -> list[str]:
    return [f.name for dataclass in dataclasses for f in fields(dataclass) if f.init]


def _unknown_key_error(key: str, source: str, names: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else " See `vit-ft train --help` for the fields."
    return ValueError(f"Unknown field {key!r} in {source}.{hint}")


def read_recipe(path: str | Path | None, overrides: list[str] | None = None, dataclasses=DATACLASSES) -> tuple:
    """
    Parses the recipe at `path` (YAML) and the `overrides` flags (`--field value`, later wins) into the
    dataclasses. An unknown key, in the file or the flags, is an error naming it and the closest valid field.
    """
    names = _field_names(dataclasses)
    recipe = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Recipe {path} does not exist.")
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"Recipe {path} must be a mapping of field: value, not {type(recipe).__name__}.")
        for key in recipe:
            if key not in names:
                raise _unknown_key_error(key, str(path), names)
    overrides = list(overrides or [])
    for flag in overrides:
        if flag.startswith("--") and flag[2:].split("=", 1)[0] not in names:
            raise _unknown_key_error(flag[2:].split("=", 1)[0], "the command line", names)
    overrides, unset = _pop_null_flags(overrides)
    parser = HfArgumentParser(dataclasses)
    # The file's values become the parser's defaults, keeping their YAML types (lists, null); flags parse over them.
    parser.set_defaults(**{**recipe, **unset})
    return parser.parse_args_into_dataclasses(args=overrides, look_for_args_file=False)


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


def save_resolved_recipe(parsed: tuple, output_dir: str | Path) -> Path:
    """Writes every field's final value to `output_dir/vit_ft_recipe.yaml`, with the command that ran."""
    resolved = {}
    for arguments in parsed:
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
