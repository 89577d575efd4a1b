"""The model a run starts from: a checkpoint or a preset, with config fields changed."""

import difflib
import inspect
import json
import os
from dataclasses import dataclass, field

from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..model import PRESETS, ViTConfig

# The fields `model_overrides` may set: ViTConfig's own and the PretrainedConfig fields a classifier uses.
CONFIG_FIELDS = tuple(
    name for name in inspect.signature(ViTConfig.__init__).parameters if name not in ("self", "kwargs")
) + ("num_labels", "id2label", "label2id", "problem_type")


def check_model_source(path_or_id: str, argument: str) -> None:
    """
    Raises unless `path_or_id` is an existing folder or can only be a Hub id. A value written as a path must exist:
    it starts with `/`, `./`, `../` or `~`, has more than one `/`, or its first component is a folder here (`outputs`
    in `outputs/digits`). Looking such a value up on the Hub would only fail, slowly, and name the wrong cause.
    """
    local = os.path.expanduser(path_or_id)
    if os.path.isdir(local):
        return
    if os.path.exists(local):
        raise FileNotFoundError(
            f"{argument}={path_or_id!r} is not a directory but a file: give the folder that "
            "holds the model (config.json and its weights)."
        )
    first = path_or_id.split("/", 1)[0]
    if path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") > 1:
        why = ""
    elif "/" in path_or_id and os.path.isdir(first):
        why = f" ({first}/ is a folder here, so this is a path, not a Hub id)"
    else:
        try:
            validate_repo_id(path_or_id)
        except HFValidationError:
            raise ValueError(
                f"{argument}={path_or_id!r} is neither a folder here nor a Hub id (org/name): give a "
                "saved model's folder or a Hub id."
            ) from None
        return  # a Hub id: read from the Hub (or its cache) when the model is loaded
    raise FileNotFoundError(
        f"{argument}={path_or_id!r} is not a directory: {os.path.abspath(local)} does not "
        f"exist{why}. Train or save the model there first, or correct the path."
    )


def parse_config_overrides(value: dict | str | None, argument: str = "model_overrides") -> dict:
    """
    `value` (a mapping, or its JSON text as older recipes wrote it) as a dict of ViTConfig fields. An unknown key is
    an error that names the closest field.
    """
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{argument} is not valid JSON ({error}): write it as a YAML mapping, e.g. "
                f"{argument}: {{image_size: 32, patch_size: 4}}."
            ) from error
    if not isinstance(value, dict):
        raise ValueError(f"{argument} must be a mapping of ViTConfig fields, not {type(value).__name__}.")
    for key in value:
        if key not in CONFIG_FIELDS:
            close = difflib.get_close_matches(key, CONFIG_FIELDS, n=1, cutoff=0.6)
            hint = f"Did you mean {close[0]!r}?" if close else f"ViTConfig's fields are: {', '.join(CONFIG_FIELDS)}."
            raise ValueError(f"{argument} sets {key!r}, which is not a ViTConfig field. {hint}")
    return dict(value)


@dataclass
class ModelArguments:
    """Where the model comes from. Checked on creation; nothing is read but whether a local path exists."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A vit_ft directory or Hub id, a transformers ViT/DeiT checkpoint (converted on the fly) or "
            "a timm-converted directory. Leave empty to train `preset` from scratch."
        },
    )
    preset: str | None = field(
        default=None, metadata={"help": "Architecture to train from scratch, e.g. vit_tiny_patch16_224."}
    )
    model_overrides: dict | str | None = field(
        default=None,
        metadata={
            "help": "ViTConfig fields set on the model, as a YAML mapping, e.g. {image_size: 32, patch_size: "
            "4, drop_path_rate: 0.1} (JSON text also works on the command line)."
        },
    )
    image_processor_name: str | None = field(
        default=None, metadata={"help": "Image processor to size and normalise with; defaults to the model's."}
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "Base model of a LoRA adapter given as model_name_or_path, when the one its "
            "adapter_config.json names has moved."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the code a checkpoint's config.json or preprocessor_config.json names in auto_map, "
            "other than vit_ft's own; without it such a checkpoint is refused. Only for trusted code."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    model_revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token; HF_TOKEN is used when unset."})

    def __post_init__(self):
        self.model_overrides = parse_config_overrides(self.model_overrides)
        if self.preset is not None and self.preset.split(".", 1)[0] not in PRESETS:
            close = difflib.get_close_matches(self.preset, PRESETS, n=1)
            hint = f"Did you mean {close[0]!r}?" if close else "See vit_ft.PRESETS for the names."
            raise ValueError(f"preset={self.preset!r} is not a known architecture. {hint}")
        for name in ("model_name_or_path", "base_model"):
            if getattr(self, name):
                check_model_source(getattr(self, name), name)

    @property
    def hub_options(self) -> dict:
        """The Hub options (cache, revision, token), as `from_pretrained` takes them."""
        return {"cache_dir": self.cache_dir, "revision": self.model_revision, "token": self.token}
