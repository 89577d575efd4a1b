"""
What the Hub shows of a run, and the rule a Hub repo id follows. Where a run goes (push_to_hub, hub_model_id, ...)
are the Trainer's own arguments, which ViTTrainingArguments checks against that rule.
"""

from dataclasses import dataclass, field

from huggingface_hub.utils import HFValidationError, validate_repo_id

REPO_ID_RULE = (
    "A repo id is `name` or `namespace/name`: letters, digits, '-', '_' and '.', at most 96 characters, "
    "without '--' or '..', e.g. `my-user/vit-digits`."
)


def is_repo_id(name: str) -> bool:
    """Whether `name` has the form of a Hub repo id (`name` or `namespace/name`); a local path may have it too."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def check_repo_id(repo_id: str, argument: str) -> None:
    """Raises a ValueError naming `argument` when `repo_id` is not a valid Hub repo id."""
    if not is_repo_id(repo_id):
        raise ValueError(f"{argument}={repo_id!r} is not a valid Hub repo id. {REPO_ID_RULE}")


@dataclass
class HubArguments:
    license: str | None = field(
        default=None, metadata={"help": "Hub license id of the trained model for its card, e.g. apache-2.0 or mit."}
    )
