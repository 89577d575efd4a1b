"""
The position of each process in a streamed train split (`vit_ft.data.streams.TrainStream`), kept in every checkpoint
so that `--resume_from_checkpoint` goes on from it instead of reading the stream again up to there.
"""

from pathlib import Path

from accelerate.utils import gather_object
from transformers import TrainerCallback

from ..output_dir import STREAM_POSITIONS, checkpoint_dir, read_json, write_json


class StreamPositionCallback(TrainerCallback):
    """
    With each checkpoint, gathers every process's train dataloader state (torchdata's StatefulDataLoader: the
    position of each of its workers) into the checkpoint's STREAM_POSITIONS, written by the main process. Add it
    before `ChecksumCallback`, which must see the file.
    """

    def on_save(self, args, state, control, train_dataloader=None, **kwargs):
        positions = [train_dataloader.state_dict()]
        if args.world_size > 1:
            positions = gather_object(positions)  # a collective: every process saves, so every one comes here
        if args.should_save:
            record = {"world_size": args.world_size, "positions": positions}
            write_json(checkpoint_dir(args.output_dir, state.global_step) / STREAM_POSITIONS, record)


def read_stream_position(checkpoint: str | Path, world_size: int, process_index: int, workers: int) -> dict:
    """
    This process's dataloader state in `checkpoint`, saved by `StreamPositionCallback`; it must have been saved by as
    many processes, each with as many dataloader `workers`.
    """
    path = Path(checkpoint) / STREAM_POSITIONS
    record = read_json(path)
    if record is None:
        raise FileNotFoundError(
            f"{path} does not exist: {checkpoint} was not saved by a streamed run, whose checkpoints hold the "
            "stream's position. Resume it with the data it was trained on."
        )
    if record["world_size"] != world_size:
        raise ValueError(
            f"{checkpoint} was saved by {record['world_size']} processes and this run has {world_size}: a streamed "
            f"run resumes with the processes it had, each at its place in its own shards. Launch "
            f"{record['world_size']} processes."
        )
    position = record["positions"][process_index]
    # torchdata keeps each worker's place under _snapshot; a loader without workers keeps its own at the top.
    saved_workers = position.get("_snapshot", {}).get("_main_snapshot", {}).get("_num_workers", 0)
    if saved_workers != workers:
        raise ValueError(
            f"{checkpoint} was saved with dataloader_num_workers={saved_workers} and this run has {workers}: each "
            f"worker of a streamed run resumes at its own place in its own shards. Set dataloader_num_workers "
            f"{saved_workers}."
        )
    return position
