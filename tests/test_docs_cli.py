"""
Every `vit-ft` command and flag that README.md and docs/ show is one the command line knows, as its `--help` lists it,
so the docs cannot drift from the parser; and the dashed spellings of earlier releases still work, with a note.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

from vit_ft.cli import DEPRECATED_SPELLINGS, main, respell_flags

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# `vit-ft CMD ...` or `... -m vit_ft.cli CMD ...` (under accelerate launch); the command's own text runs to a comment.
COMMAND = re.compile(r"(?:vit-ft|-m vit_ft\.cli)(?:\s+--debug)?\s+([a-z][a-z-]*)([^#]*)")
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
# The usage line's placeholder for any recipe field (`vit-ft train RECIPE.yaml [--field value ...]`).
PLACEHOLDERS = {"--field"}
# Flags the docs show on purpose as mistakes, with the error they get: each must stay unknown.
SHOWN_AS_MISTAKES = {("train", "--learnig_rate")}


def _code(text: str):
    """The code a page shows: each line of its fenced blocks (continuation lines joined), then its code spans."""
    for block in FENCED_BLOCK.findall(text):
        yield from block.replace("\\\n", " ").splitlines()
    yield from CODE_SPAN.findall(FENCED_BLOCK.sub("", text))


def _documented() -> dict[str, set[str]]:
    """Command -> the flags the pages show with it."""
    shown: dict[str, set[str]] = {}
    for page in PAGES:
        for snippet in _code(page.read_text()):
            for command, rest in COMMAND.findall(snippet):
                shown.setdefault(command, set()).update(FLAG.findall(rest))
    return shown


def _help(command: str) -> str:
    """What `vit-ft COMMAND --help` prints (for train and pretrain: every recipe field, `--help_all`)."""
    flag = "--help_all" if command in ("train", "pretrain") else "--help"
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.suppress(SystemExit):
        main([command, flag])
    return output.getvalue()


DOCUMENTED = _documented()


def test_the_pages_show_commands():
    # The pages' code must be found at all, or the test below checks nothing.
    commands = {"train", "pretrain", "evaluate", "predict", "explain", "export", "push", "convert", "knn"}
    assert commands <= set(DOCUMENTED)
    assert sum(map(len, DOCUMENTED.values())) > 50


@pytest.mark.parametrize("command", sorted(DOCUMENTED))
def test_every_documented_flag_is_in_the_commands_help(command):
    known = set(FLAG.findall(_help(command)))
    assert known, f"vit-ft {command} --help printed no flags: is {command!r} a command?"
    mistakes = {flag for shown_command, flag in SHOWN_AS_MISTAKES if shown_command == command}
    assert not mistakes & known, f"shown in the docs as mistakes, but vit-ft {command} knows them: {mistakes & known}"
    unknown = DOCUMENTED[command] - known - PLACEHOLDERS - mistakes
    assert not unknown, f"README.md or docs/ show `vit-ft {command}` with flags it does not know: {sorted(unknown)}"


def test_dashed_spellings_still_work_with_a_note(capsys):
    argv = ["convert", "--from", "timm", "--timm-model", "vit_tiny_patch16_224", "--image-mean=0.5,0.5,0.5"]
    assert respell_flags(argv) == [
        "convert",
        "--from",
        "timm",
        "--timm_model",
        "vit_tiny_patch16_224",
        "--image_mean=0.5,0.5,0.5",
    ]
    notes = capsys.readouterr().err.splitlines()
    assert notes == [
        "vit-ft: --timm-model is deprecated; use --timm_model.",
        "vit-ft: --image-mean is deprecated; use --image_mean.",
    ]
    assert all("-" not in new.removeprefix("--") for new in DEPRECATED_SPELLINGS.values())


def test_the_dashed_help_flag_lists_every_training_field(capsys):
    main(["train", "--help-all"])
    output = capsys.readouterr()
    assert "--help-all is deprecated; use --help_all." in output.err
    assert "--gradient_accumulation_steps" in output.out  # a TrainingArguments field that only the full list shows
