"""Pushing to the Hugging Face Hub: `vit-ft push` for an output directory, and `push_to_hub: true` in a recipe.

Everything goes through `huggingface_hub.HfApi` (create_repo, upload_folder), which reads `HF_TOKEN` (or the token
`hf auth login` saved) and `HF_ENDPOINT` itself.

    vit-ft push --model outputs/digits --repo_id my-user/vit-digits [--private] [--revision BRANCH]
"""

import contextlib
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import CommitInfo, HfApi, get_token

from ..export.onnx_export import add_onnx_models
from ..output_dir import (
    ADAPTER_CONFIG,
    CHECKPOINT_PATTERN,
    LOCAL_ONLY_PREFIX,
    TENSORBOARD_LOGS,
    check_model_dir,
    read_run,
)
from .arguments import check_repo_id
from .card import write_model_card

if TYPE_CHECKING:  # importing the Trainer takes a while; `import vit_ft` should not wait for it
    from transformers import Trainer

# Left out of a pushed directory: the Trainer's checkpoints (optimizer states, many times the model's size), its
# TensorBoard logs and the local files whose names start with `_`, such as the run's lock (the Trainer's own push
# leaves these out too).
IGNORE_PATTERNS = [CHECKPOINT_PATTERN, f"{TENSORBOARD_LOGS}/", f"{LOCAL_ONLY_PREFIX}*"]


class PushError(OSError):
    """An upload to the Hub failed; the message gives the `vit-ft push` command that retries it."""


def retry_command(model_dir: str | Path, repo_id: str, **options: str | bool | None) -> str:
    """
    The `vit-ft push` command that pushes `model_dir` to `repo_id` again, quoted for a POSIX shell. `options` are
    its other flags by name (`private=True`, `revision="dev"`); a None or False one is left out.
    """
    command = ["vit-ft", "push", "--model", str(model_dir), "--repo_id", repo_id]
    for name, value in options.items():
        if value is True:
            command.append(f"--{name}")
        elif value not in (None, False):
            command += [f"--{name}", value]
    return shlex.join(command)


@contextlib.contextmanager
def _retry_hint(model_dir: str | Path, command: str) -> Iterator[None]:
    """Turns any failure of the Hub calls inside into a PushError that gives `command` to retry."""
    try:
        yield
    # huggingface_hub raises HTTP errors, connection errors, ValueError for metadata the Hub refuses, and hf_xet
    # its own: all mean the same to the user, who needs the command that tries again.
    except Exception as error:
        raise PushError(
            f"Pushing {model_dir} to the Hub failed: {type(error).__name__}: {error}\nThe local files "
            f"are all still in {model_dir}. Retry with:\n  {command}"
        ) from error


def push_model(
    model_dir: str | Path,
    repo_id: str,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    license: str | None = None,
    with_onnx: bool = False,
) -> CommitInfo:
    """
    Pushes the vit-ft model or LoRA adapter in `model_dir` to the Hub repo `repo_id`: creates the repo (`private`
    if asked; an existing one is kept), writes the model card to `model_dir/README.md` (`license` as in
    `build_model_card`), creates the branch `revision` if it is missing, then uploads the directory but checkpoints
    and logs (`IGNORE_PATTERNS`). `with_onnx` first exports the model into `model_dir/onnx/` (float32 and int8, as
    `vit-ft export`), so the repo serves ONNX Runtime and transformers.js too, and the card says how. The arguments are
    checked before the first request; a failed request raises a PushError that gives the command to retry.
    """
    check_model_dir(model_dir)
    read_run(model_dir)  # the files the card is written from: a damaged one fails here, before any request
    if with_onnx and (Path(model_dir) / ADAPTER_CONFIG).is_file():
        raise ValueError(
            f"{model_dir} is a LoRA adapter: --with_onnx exports models. Merge it first (vit-ft "
            "merge-lora --adapter DIR --output MERGED) and push the merged model with "
            "--with_onnx."
        )
    check_repo_id(repo_id, "--repo_id")
    if get_token() is None:
        raise ValueError(
            "vit-ft push needs a Hub token with write access, and none was found: set the HF_TOKEN "
            "environment variable or run `hf auth login`."
        )
    command = retry_command(
        model_dir,
        repo_id,
        private=private,
        revision=revision,
        commit_message=commit_message,
        license=license,
        with_onnx=with_onnx,
    )
    if with_onnx:
        add_onnx_models(model_dir)  # before any request: an export that fails leaves the Hub untouched
    api = HfApi()
    with _retry_hint(model_dir, command):
        # The full id: create_repo adds the user's namespace to a bare name, and the card's snippets need it.
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    write_model_card(model_dir, repo_id, license)
    with _retry_hint(model_dir, command):
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=model_dir,
            revision=revision,
            commit_message=commit_message or "Upload with vit-ft push",
            ignore_patterns=IGNORE_PATTERNS,
        )


def push_trained_model(trainer: "Trainer") -> None:
    """
    At the end of a run with `push_to_hub: true`: `Trainer.push_to_hub`, which saves the model, writes vit-ft's card
    (`ViTTrainer.create_model_card`) and uploads the output directory. A failed upload raises a PushError that gives
    the `vit-ft push` command to retry; the run's files are all written by then.
    """
    args = trainer.args
    if not args.push_to_hub:
        return
    repo_id = trainer.hub_model_id or args.hub_model_id or Path(args.output_dir).absolute().name
    command = retry_command(args.output_dir, repo_id, private=args.hub_private_repo, revision=args.hub_revision)
    with _retry_hint(args.output_dir, command):
        trainer.push_to_hub(commit_message="End of training")
