"""
Reading a run's files. A damaged file (a copy cut short, a run killed while the Trainer wrote it) is an error that
names it and says what to do.
"""

import json
from pathlib import Path

import yaml


class DamagedFileError(ValueError):
    """A file is empty, truncated or not of the kind its name says; the message names it and what to do."""


RESTORE_ADVICE = (
    "Restore it from a copy, write it again (train, download, convert or merge the model again), or use "
    "another checkpoint."
)


def read_json(path: str | Path, advice: str = RESTORE_ADVICE) -> dict | None:
    """The JSON object in `path`; None when there is no such file. A file that does not parse is a DamagedFileError."""
    path = Path(path)
    if not path.is_file():
        return None
    content = path.read_bytes()
    try:
        return json.loads(content)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedFileError(f"{path} {_json_problem(content, error)}. {advice}") from error


def _json_problem(content: bytes, error: ValueError) -> str:
    if not content.strip():
        return f"is empty ({len(content)} bytes), not JSON"
    if isinstance(error, json.JSONDecodeError):
        # The parser ran out of text (a string runs to the end only then): the end of the file is missing.
        if error.pos >= len(content.rstrip()) or error.msg.startswith("Unterminated string"):
            return f"is truncated: its JSON stops unfinished after {len(content)} bytes ({error.msg})"
        return f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    return f"is not JSON text ({error})"


def read_yaml(path: Path):
    """The YAML document in `path`; a DamagedFileError that names the file when it does not parse."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise DamagedFileError(f"{path} is not valid YAML ({reason}). {RESTORE_ADVICE}") from error


# safetensors refuses headers above 100 MB (safetensors' MAX_HEADER_SIZE): a larger length means another kind of file.
_MAX_SAFETENSORS_HEADER = 100_000_000


def safetensors_problem(path: str | Path) -> str | None:
    """
    What is wrong with the safetensors file `path`, as words that follow its name ("is truncated: ..."), or None
    when its header parses and the file holds exactly the bytes the header announces. Reads the header only.
    """
    size = Path(path).stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    with open(path, "rb") as file:
        # The format: an 8-byte little-endian header length, a JSON header, then the tensors' bytes.
        length = int.from_bytes(file.read(8), "little")
        header = file.read(min(length, _MAX_SAFETENSORS_HEADER))
    if size < 8 or not header.startswith(b"{") or length > _MAX_SAFETENSORS_HEADER:
        return "is not a safetensors file (it does not start with a safetensors header)"
    if len(header) < length:
        return f"is truncated: {size} bytes, fewer than its {length}-byte header"
    try:
        tensors = [entry for name, entry in json.loads(header).items() if name != "__metadata__"]
        expected = 8 + length + max((entry["data_offsets"][1] for entry in tensors), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        return "is not a safetensors file (its header does not describe tensors)"
    if size < expected:
        return f"is truncated: {size} bytes of the {expected} its header announces"
    if size > expected:
        return f"is damaged: {size} bytes, {size - expected} more than its header announces"
    return None
