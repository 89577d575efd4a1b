"""Checksums of each checkpoint the Trainer saves, which `--resume_from_checkpoint` verifies
(`vit_ft.checkpoint_integrity`): they find damage that leaves every file well formed, such as random bytes written
inside a tensor."""

from transformers import TrainerCallback

from ..checkpoint_integrity import write_checksums
from ..output_dir import checkpoint_dir


class ChecksumCallback(TrainerCallback):
    """
    After the Trainer saved a checkpoint, the process that saves writes CHECKSUMS beside its files. Add it after every
    callback that writes into checkpoints (`EMACallback`): callbacks run in the order they were added.
    """

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            write_checksums(checkpoint_dir(args.output_dir, state.global_step), args.process_index)
