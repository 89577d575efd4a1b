"""Stopping a run cleanly on SIGTERM or SIGINT: the current optimizer step ends, a checkpoint is saved, training stops.

    stop = PreemptionCallback()
    trainer.add_callback(stop)
    with stop.handling_signals():
        trainer.train()
    if stop.signal_name is not None:
        ...  # stopped after step stop.step, its checkpoint saved

A cluster scheduler sends SIGTERM some time before it kills a preempted job; Ctrl-C sends SIGINT. A second signal
ends the process at once, as it would without this callback.
"""

import contextlib
import os
import signal
from collections.abc import Iterator

import torch
import torch.distributed as dist
from transformers import TrainerCallback

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionCallback(TrainerCallback):
    """
    After a stop signal (`handling_signals`), the next `on_step_end` asks the Trainer to save a checkpoint and to stop
    training. In a multi-process run the processes agree at each step end on whether any of them got the signal, so
    all save the same step together (the launcher sends it to each, not always within the same step).
    """

    def __init__(self):
        self.received: signal.Signals | None = None  # the signal that arrived
        self.signal_name: str | None = None  # set once training stopped for it: SIGTERM, SIGINT
        self.step: int | None = None  # the step whose checkpoint was saved
        self._group = None  # the CPU process group the processes agree over; None in a single process

    def on_train_begin(self, args, state, control, **kwargs):
        if args.world_size > 1 and dist.is_available() and dist.is_initialized():
            # Over gloo, on the CPU: agreeing over NCCL would make every step wait for the GPU to finish.
            self._group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")

    def on_step_end(self, args, state, control, **kwargs):
        received = self.received is not None
        if self._group is not None:
            flag = torch.tensor([int(received)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
            received = bool(flag.item())
            if self.received is None and received:
                self.received = signal.SIGTERM  # another process got it first; the launcher sends SIGTERM
        if received and self.step is None:
            control.should_save = True
            control.should_training_stop = True
            self.signal_name = self.received.name
            self.step = state.global_step
        return control

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Catches SIGTERM and SIGINT for the block: the first one stops training, a second one ends the process."""
        # getsignal gives None for a handler installed outside Python; the default stands in for it.
        previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
        previous = {number: signal.SIG_DFL if handler is None else handler for number, handler in previous.items()}

        def handle(number, frame):
            if self.received is not None:
                # The second signal: what it would have done without us (SIGTERM kills, SIGINT raises
                # KeyboardInterrupt).
                for stop_signal, handler in previous.items():
                    signal.signal(stop_signal, handler)
                os.kill(os.getpid(), number)
                return
            self.received = signal.Signals(number)

        for number in STOP_SIGNALS:
            signal.signal(number, handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
