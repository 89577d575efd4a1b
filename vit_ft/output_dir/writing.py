"""
Writing a run's files atomically: a run killed while writing, or a reader at that moment, sees the old file or the new
one, never half. And whether a command may write its results over a file already there.
"""

import json
import os
import secrets
from pathlib import Path

from .names import ALL_RESULTS, TEMPORARY_PREFIX, results_file
from .reading import DamagedFileError, read_json


def write_text(path: str | Path, text: str) -> Path:
    """Writes `text` to `path` atomically: to a temporary file in the same folder, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f"{TEMPORARY_PREFIX}{path.name}.{secrets.token_hex(4)}"
    # os.open with 0o666 gives the file the permissions of any other the user creates (umask), as write_text would.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it the file
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: dict, indent: int = 2, sort_keys: bool = False) -> Path:
    return write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def save_results(output_dir: str | Path, split: str, metrics: dict, combined: bool = True) -> None:
    """
    The Trainer's `save_metrics`, atomically: `split`'s metrics to `<split>_results.json` and, when `combined`,
    merged into all_results.json, in the Trainer's format.
    """
    folder = Path(output_dir)
    write_json(folder / results_file(split), metrics, indent=4, sort_keys=True)
    if combined:
        merged = {**(read_json(folder / ALL_RESULTS) or {}), **metrics}
        write_json(folder / ALL_RESULTS, merged, indent=4, sort_keys=True)


def check_result_file(
    output_file: Path, fields: tuple[str, ...], command: str, overwrite: bool, plot_file: Path | None = None
) -> None:
    """
    Raises a one-line FileExistsError unless `vit-ft <command>` may write its results to `output_file` (and
    `plot_file`, a picture beside them): each is new, or an earlier result of the command (a JSON object with all of
    `fields`) that `overwrite` replaces. Any other file is never replaced: a model's config.json, a JSON without the
    fields, a non-JSON file, or a plot beside no result.
    """
    is_result = _is_result(output_file, fields)
    if output_file.exists() and not is_result:
        raise FileExistsError(
            f"{output_file} exists and is not a result of vit-ft {command} (it lacks "
            f"{', '.join(fields)}): it is never overwritten. Choose another --output."
        )
    if plot_file is not None and plot_file.exists() and not is_result:
        raise FileExistsError(
            f"{plot_file} exists beside no vit-ft {command} result, so it is another's file: it is "
            "never overwritten. Choose another --output."
        )
    if overwrite:
        return
    for path in (output_file, plot_file):
        if path is not None and path.exists():
            raise FileExistsError(
                f"{path} holds the results of an earlier vit-ft {command}: pass --overwrite to "
                "replace them, or --output to write elsewhere."
            )


def _is_result(path: Path, fields: tuple[str, ...]) -> bool:
    """Whether `path` is a regular file holding a JSON object with every one of `fields`."""
    if not path.is_file():
        return False
    try:
        content = read_json(path)
    except (DamagedFileError, OSError):  # not JSON at all
        return False
    return isinstance(content, dict) and all(name in content for name in fields)
