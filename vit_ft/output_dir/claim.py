"""
Claiming an output directory for one run: a lock against a second live run, and a refusal of a folder that holds
another run's files unless the run replaces it or resumes from it.

    with claim_output_dir(args.output_dir, args.overwrite_output_dir, args.resume_from_checkpoint, args.should_save):
        ...  # one run: nothing else starts into the folder until it ends
"""

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from .names import CHECKPOINT_PATTERN, CHECKPOINT_PREFIX, LOCK, REMOVED_WITH_A_RUN, RUN_PATTERNS


def run_files(output_dir: str | Path) -> list[str]:
    """The names of the files and checkpoint folders of a run in `output_dir`, sorted; empty when it holds none."""
    folder = Path(output_dir)
    found = {path.name for pattern in RUN_PATTERNS for path in folder.glob(pattern)}
    return sorted(found | {path.name for path in checkpoint_folders(folder)})


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The checkpoint-<step> folders in `output_dir`, as the Trainer finds them to resume (get_last_checkpoint)."""
    start = f"{CHECKPOINT_PREFIX}-"
    return [
        path
        for path in Path(output_dir).glob(CHECKPOINT_PATTERN)
        if path.is_dir() and path.name[len(start) :].isdigit()
    ]


def remove_run(output_dir: str | Path) -> None:
    """Removes a run's files from `output_dir`: model, adapter, results, plots, card, recipe, checkpoints, logs."""
    folder = Path(output_dir)
    removed = (path for pattern in REMOVED_WITH_A_RUN for path in folder.glob(pattern))
    for path in [*checkpoint_folders(folder), *removed]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_output_dir(
    output_dir: str | Path, overwrite: bool = False, resume_from_checkpoint: str | None = None, saves: bool = True
) -> Iterator[None]:
    """
    Holds `output_dir` for one run, to be taken before any data or checkpoint is loaded: locks it, so that a second
    run started into it stops at once, and refuses it if it holds another run's files (`run_files`) unless
    `overwrite` (they are removed first) or `resume_from_checkpoint` (the folder is used as it is). The lock is
    released when the block ends, by an error too.

    Only the process that saves (`saves`: TrainingArguments.should_save) claims: the others would see its fresh files
    as another run's.
    """
    if not saves:
        yield
        return
    if overwrite and resume_from_checkpoint:
        raise ValueError(
            "overwrite_output_dir with resume_from_checkpoint would remove the checkpoints the run "
            "resumes from: set only one of them."
        )
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK)
    try:
        lock.acquire(timeout=0)  # one try: a run in progress stops this one at once
    except Timeout:
        raise OSError(
            f"output_dir {folder} is in use by a run that has not ended (it holds {folder / LOCK}): wait "
            "for that run to end, or choose another output_dir."
        ) from None
    try:
        found = run_files(folder)
        if found and not resume_from_checkpoint:
            if not overwrite:
                shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
                raise FileExistsError(
                    f"output_dir {folder} already holds a run ({shown}): pass --overwrite_output_dir true to remove "
                    "it first, choose another output_dir, or pass --resume_from_checkpoint CHECKPOINT to continue it."
                )
            remove_run(folder)
        yield
    finally:
        lock.release()
