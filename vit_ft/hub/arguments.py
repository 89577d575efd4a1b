"""What the Hub shows of a run. Where it goes (push_to_hub, hub_model_id, ...) are the Trainer's own arguments."""

from dataclasses import dataclass, field


@dataclass
class HubArguments:
    license: str | None = field(
        default=None, metadata={"help": "Hub license id of the trained model for its card, e.g. apache-2.0 or mit."}
    )
