"""`vit-ft demo` in the terminal: what it cannot start on (no Gradio, no model folder, a port in use) stops it with one
line naming the cause, before anything is served."""

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import import_blocker, tiny_config
from tests.demo.browser import server_environment
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny")
    ViTForImageClassification(tiny_config()).save_pretrained(folder)
    default_processor(32).save_pretrained(folder)
    return str(folder)


def _demo(*arguments: str, before: str = "") -> subprocess.CompletedProcess:
    """`vit-ft demo ARGUMENTS` in a fresh interpreter (after the code `before`), as run from a terminal."""
    program = (
        "import sys\n"
        + before
        + textwrap.dedent(
            """
        from vit_ft.cli import main
        main(["demo", *sys.argv[1:]])
        """
        )
    )
    return subprocess.run(
        [sys.executable, "-c", program, *arguments],
        env=server_environment(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


def test_without_gradio_the_demo_says_how_to_install_it(model_dir):
    line = _one_line(_demo("--model", model_dir, before=import_blocker("gradio")))
    assert line == (
        "vit-ft demo: gradio is not installed (vit-ft demo needs it): pip install 'vit-ft[demo]' (in a "
        'clone: pip install -e ".[demo]")'
    )


def test_a_model_folder_that_does_not_exist_is_named(tmp_path):
    missing = tmp_path / "outputs" / "no_such_run"
    line = _one_line(_demo("--model", str(missing)))
    assert line.startswith(f"vit-ft demo: model={str(missing)!r} is not a directory: {missing} does not exist")


def test_a_port_in_use_is_named_before_the_model_loads(model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line(_demo("--model", model_dir, "--port", str(port)))
    assert line.startswith(f"vit-ft demo: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)")
    assert line.endswith("stop what uses it, or choose another port with --port.")
