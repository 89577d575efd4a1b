"""PreemptionCallback on its own: a signal in the block asks the Trainer to save and stop at the next step end."""

import os
import signal

from transformers import TrainerControl, TrainerState, TrainingArguments

from vit_ft.training.preemption import PreemptionCallback


def test_a_signal_asks_for_a_checkpoint_and_a_stop_at_the_next_step_end(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    state, control = TrainerState(global_step=3), TrainerControl()
    stop = PreemptionCallback()
    before = signal.getsignal(signal.SIGTERM)
    with stop.handling_signals():
        stop.on_step_end(args, state, control)
        assert not control.should_save and not control.should_training_stop
        os.kill(os.getpid(), signal.SIGTERM)
        state.global_step = 4
        stop.on_step_end(args, state, control)
    assert control.should_save and control.should_training_stop
    assert (stop.signal_name, stop.step) == ("SIGTERM", 4)
    assert signal.getsignal(signal.SIGTERM) is before
