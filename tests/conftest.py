import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
import torch
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard, RepoUrl

from vit_ft import ViTConfig

TINY = dict(
    image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
)


def import_blocker(package: str) -> str:
    """Code to put before the code of a fresh interpreter: importing `package` (or any module in it) then fails."""
    return textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == {package!r} or name.startswith({package + "."!r}):
                    raise ImportError("{package} is blocked in this test")
        sys.meta_path.insert(0, Block())
        """
    )


# As on a machine without vit-ft installed.
_BLOCK_VIT_FT = import_blocker("vit_ft")


def two_process_launch(port: int) -> list[str]:
    """`accelerate launch` of 2 processes on this machine (gloo on the CPU), meeting on `port`; the program follows."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]


def tiny_config(**overrides) -> ViTConfig:
    """A few-thousand-parameter config: shapes and numbers check on CPU in milliseconds."""
    return ViTConfig(**{**TINY, "num_labels": 5, **overrides})


def run_without_vit_ft(code: str, *args: str, workdir: Path) -> None:
    """
    Runs `code` (with `args` in sys.argv[1:]) in a fresh, offline interpreter where vit_ft cannot be imported, in
    `workdir`, which also holds the remote code transformers copies. Raises when the code fails.
    """
    env = {**os.environ, "HF_MODULES_CACHE": str(workdir / "modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    program = _BLOCK_VIT_FT + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", program, *args], check=True, cwd=workdir, env=env)


class FakeHub:
    """
    The Hub as HfApi sees it at its network boundary: repos, branches and commits are kept under `root`, a repo's
    files at `root/<namespace>/<name>/<branch>/`, so tests can read what an upload would have sent.
    """

    namespace = "tester"  # create_repo puts a bare name in the token owner's namespace

    def __init__(self, root: Path):
        self.root = root
        self.repos: dict[str, dict] = {}  # full repo id: create_repo's arguments, endpoint and authorization header
        self.branches: list[tuple[str, str]] = []
        self.commits: list[dict] = []
        self.validated_cards: list[str] = []
        self.fail_commits: Exception | None = None  # raised by every commit while set

    def files(self, repo_id: str, revision: str | None = None) -> Path:
        return self.root / repo_id / (revision or "main")

    def create_repo(self, api: HfApi, repo_id: str, *, token=None, private=None, exist_ok=False, **kwargs) -> RepoUrl:
        full_id = repo_id if "/" in repo_id else f"{self.namespace}/{repo_id}"
        authorization = api._build_hf_headers(token=token).get("authorization")
        self.repos[full_id] = {"private": private, "endpoint": api.endpoint, "authorization": authorization}
        # A Space's repo type and SDK, when given: a model repo's record stays as it was.
        self.repos[full_id].update({name: kwargs[name] for name in ("repo_type", "space_sdk") if name in kwargs})
        return RepoUrl(f"{api.endpoint}/{full_id}", endpoint=api.endpoint)

    def create_branch(self, api: HfApi, repo_id: str, *, branch: str, exist_ok=False, **kwargs) -> None:
        self.branches.append((repo_id, branch))

    def create_commit(self, api: HfApi, repo_id: str, operations, *, commit_message: str, revision=None, **kwargs):
        if self.fail_commits is not None:
            raise self.fail_commits
        operations = list(operations)
        folder = self.files(repo_id, revision)
        for operation in operations:
            target = folder / operation.path_in_repo
            if isinstance(operation, CommitOperationAdd):
                target.parent.mkdir(parents=True, exist_ok=True)
                with operation.as_file() as source:
                    target.write_bytes(source.read())
            elif isinstance(operation, CommitOperationDelete):
                target.unlink()
            else:
                raise NotImplementedError(f"FakeHub does not copy files: {operation}")
        paths = sorted(operation.path_in_repo for operation in operations)
        self.commits.append({"repo_id": repo_id, "revision": revision, "message": commit_message, "paths": paths})
        oid = hashlib.sha1(f"{len(self.commits)}".encode()).hexdigest()
        return CommitInfo(f"{api.endpoint}/{repo_id}/commit/{oid}", commit_message, "", oid)

    def validate_yaml(self, api: HfApi, content: str, **kwargs) -> None:
        # The Hub's /api/validate-yaml, offline: huggingface_hub parses the card's metadata and raises if invalid.
        ModelCard(content)
        self.validated_cards.append(content)


def _no_network(*args, **kwargs):
    raise AssertionError("a test sent an HTTP request: intercept it in tests/conftest.py's FakeHub")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> FakeHub:
    """HfApi with no network behind it: its requests land in a FakeHub, and any other request fails the test."""
    hub = FakeHub(tmp_path / "hub")
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")
    monkeypatch.setattr(httpx2.Client, "send", _no_network)
    # With hf_xet installed, upload_folder streams files through its own pipeline; without it, it sends them in one
    # create_commit, the boundary this fake intercepts. What is uploaded is chosen the same way in both.
    monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)
    for name, fake in (
        ("create_repo", hub.create_repo),
        ("create_branch", hub.create_branch),
        ("create_commit", hub.create_commit),
        ("_validate_yaml", hub.validate_yaml),
    ):
        monkeypatch.setattr(HfApi, name, lambda api, *args, _fake=fake, **kwargs: _fake(api, *args, **kwargs))
    return hub


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def pixel_values() -> torch.Tensor:
    return torch.randn(3, 3, TINY["image_size"], TINY["image_size"])
