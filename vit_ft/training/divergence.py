"""Stopping a run whose weights turned non-finite before it saves them: no checkpoint and no final model with NaN
weights, and one line that says where it happened.

    trainer.add_callback(DivergenceCallback(resumed_from=args.resume_from_checkpoint))  # after PreemptionCallback
"""

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor
from transformers import TrainerCallback


class TrainingDiverged(ValueError):
    """The weights hold NaN or inf: training stopped before saving them. The message is one line for the user."""


class DivergenceCallback(TrainerCallback):
    """
    Checks that every weight is finite at the end of each step where the Trainer will log, evaluate or save, and at
    the last step; raises `TrainingDiverged` otherwise, before the Trainer saves anything of that step. Not at every
    step: reading the answer back waits for the GPU. The Trainer's logged loss cannot tell, since
    `logging_nan_inf_filter` leaves NaN losses out of it; a NaN loss reaches the weights at the optimizer step (except
    where fp16's loss scaler skips that step, which leaves the weights as they were, and is no divergence). In a
    multi-process run the processes agree (each may hold a shard), so all stop together.

    Add it after the callbacks that ask for a save at step end (`PreemptionCallback`): callbacks run in the order
    they were added, and `control.should_save` must be final when it looks.
    """

    def __init__(self, resumed_from: str | None = None):
        self.resumed_from = resumed_from

    def on_step_end(self, args, state, control, model=None, **kwargs):
        last = state.global_step >= state.max_steps
        if not (control.should_log or control.should_evaluate or control.should_save or last):
            return control
        parameters = [_local(parameter) for parameter in model.parameters()]
        finite = torch.stack([torch.isfinite(parameter).all() for parameter in parameters]).all().to(torch.int32)
        if args.world_size > 1 and dist.is_available() and dist.is_initialized():
            finite = finite.cpu() if dist.get_backend() == "gloo" else finite
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite.item():
            raise TrainingDiverged(self._message(state.global_step, model))
        return control

    def _message(self, step: int, model: torch.nn.Module) -> str:
        names = [name for name, parameter in model.named_parameters() if not torch.isfinite(_local(parameter)).all()]
        which = f" ({len(names)} tensors, the first {names[0]})" if names else ""
        start = f"resumed from {self.resumed_from}" if self.resumed_from else "started without a checkpoint"
        return (
            f"training diverged: the weights hold NaN or inf after step {step}{which}, in the run {start}; "
            f"nothing of step {step} was saved, and the model in output_dir was not overwritten. Resume from an "
            "earlier checkpoint, or lower the learning rate."
        )


def _local(parameter: torch.Tensor) -> torch.Tensor:
    """This process's part of `parameter`: its shard under FSDP2 (a DTensor), the whole tensor otherwise."""
    return parameter.to_local() if isinstance(parameter, DTensor) else parameter
