"""A served app and a real browser for the demo's tests: Debian's chromium, headless, driven by Playwright (its own
browser download is not used: `.ci/run` installs chromium with apt)."""

import contextlib
import ctypes
import os
import platform
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Headless and offline: no sandbox (CI runs as root), no GPU, and none of the browser's own calls home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_URL = re.compile(r"http://127\.0\.0\.1:\d+/?")
STARTUP_SECONDS = 180  # loading torch, transformers and Gradio on two busy cores
ANSWER_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ctrl_c_as_in_a_terminal() -> None:
    # A shell script's background job (`bash .ci/run &`) ignores SIGINT, and every program it starts inherits that:
    # Python would then never raise KeyboardInterrupt. The server takes Ctrl-C as when started from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def served(command: list[str], workdir: Path, environment: dict) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """
    Runs `command`, a server, in `workdir` until it prints its local URL; yields the process, the URL and its log
    (stdout and stderr). Stops it with Ctrl-C's signal afterwards, if it still runs.
    """
    log = workdir / f"server_{len(list(workdir.glob('server_*.log')))}.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_ctrl_c_as_in_a_terminal,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (url := LOCAL_URL.search(log.read_text())):
            assert process.poll() is None, f"the server stopped before serving:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no URL after {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield process, url.group(), log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def browser_page(url: str):
    """A page of headless chromium at `url`, once the app's image input is there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector("#image input[type=file]", state="attached", timeout=ANSWER_SECONDS * 1000)
            yield page
        finally:
            browser.close()


# tgkill(2)'s number: Python has no call that signals one thread of another process.
TGKILL = {"x86_64": 234, "aarch64": 131}[platform.machine()]


def interrupt_a_server_thread(process: subprocess.Popen) -> None:
    """
    Ctrl-C's SIGINT sent to one of `process`'s threads other than the main one: the kernel may deliver a process's
    signal to any of its threads, and Python handles it in the main thread only.
    """
    threads = sorted(int(name) for name in os.listdir(f"/proc/{process.pid}/task") if int(name) != process.pid)
    assert threads, "the server runs no thread besides its main one"
    assert ctypes.CDLL(None, use_errno=True).syscall(TGKILL, process.pid, threads[-1], signal.SIGINT) == 0


def upload(page, path: str | Path) -> None:
    page.set_input_files("#image input[type=file]", str(path))


def shown_scores(page) -> dict[str, float]:
    """The classes and scores the page shows, best first (gr.Label draws a meter per class)."""
    pairs = page.eval_on_selector_all(
        "#scores meter", "meters => meters.map(m => [m.getAttribute('aria-label'), m.getAttribute('value')])"
    )
    return {label: float(value) for label, value in pairs}


def top_label(page) -> str:
    return page.inner_text("#scores [data-testid=label-output-value]").strip()


def wait_for_scores(page, other_than: dict | None = None) -> dict[str, float]:
    """The scores once the page shows some, other than `other_than`: an answer is sent back, not drawn at once."""
    deadline = time.monotonic() + ANSWER_SECONDS
    while not (scores := shown_scores(page)) or scores == other_than:
        assert time.monotonic() < deadline, f"the page showed no new scores in {ANSWER_SECONDS} s"
        time.sleep(0.2)
    return scores


def wait_until_idle(page) -> None:
    """Waits until no output of the page shows Gradio's progress (an answer still on its way)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
        ".every(tracker => tracker.classList.contains('hide'))",
        timeout=ANSWER_SECONDS * 1000,
    )


def screenshot(page, path: Path) -> None:
    """The whole page once idle, transitions finished (Gradio fades an output while its answer is on its way)."""
    wait_until_idle(page)
    page.screenshot(path=str(path), full_page=True, animations="disabled")


def wait_for_picture(page, width: int) -> None:
    """Waits until the page has drawn the picture of the answer, `width` pixels wide."""
    page.wait_for_function(
        "width => { const img = document.querySelector('#picture img');"
        " return img !== null && img.complete && img.naturalWidth === width; }",
        arg=width,
        timeout=ANSWER_SECONDS * 1000,
    )


def server_environment(pythonpath: Path) -> dict:
    """The environment of a served app: offline, one thread, vit_ft from this checkout, Gradio not calling home."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(pythonpath),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
