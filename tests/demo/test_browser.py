"""`vit-ft demo` and the `--with_demo` Space, served for real and used in headless chromium, with a short digits run:
upload a digit, read the top class, see the attention map drawn, move the severity slider, take a screenshot."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import import_blocker
from tests.demo.browser import (
    ANSWER_SECONDS,
    browser_page,
    free_port,
    interrupt_a_server_thread,
    screenshot,
    served,
    server_environment,
    shown_scores,
    top_label,
    upload,
    wait_for_picture,
    wait_for_scores,
)
from vit_ft.demo.answers import load_demo_model
from vit_ft.demo.app import respond
from vit_ft.demo.examples import write_examples
from vit_ft.hub.space import write_space

REPO = Path(__file__).resolve().parents[2]
SHORT_TRAINING = ["--max_steps", "200", "--eval_strategy", "no", "--save_strategy", "no"]
PICTURE_WIDTH = 256  # the digits model sees 16x16: drawn 16 times as large


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    """A digits model from a short run of the quickstart recipe: it keeps the recipe, so the demo has examples."""
    output = tmp_path_factory.mktemp("runs") / "digits"
    command = [
        sys.executable,
        "-m",
        "vit_ft.cli",
        "train",
        str(REPO / "recipes/full_finetune/digits.yaml"),
        *SHORT_TRAINING,
        "--output_dir",
        str(output),
    ]
    result = subprocess.run(command, env=server_environment(REPO), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return output


@pytest.fixture(scope="module")
def digit_images(digits_model, tmp_path_factory) -> list[Path]:
    """The first test image of each digit, 0 to 9, as the demo offers them."""
    return write_examples(str(digits_model), tmp_path_factory.mktemp("digits"))


@pytest.mark.slow
def test_the_demo_answers_in_a_browser_and_stops_on_ctrl_c(digits_model, digit_images, tmp_path):
    command = [sys.executable, "-m", "vit_ft.cli", "demo", "--model", str(digits_model), "--port", str(free_port())]
    with served(command, tmp_path, server_environment(REPO)) as (process, url, log):
        assert f"vit-ft demo: serving {digits_model} at {url} (Ctrl-C stops it)" in log.read_text()
        with browser_page(url) as page:
            # Gradio draws the examples after the upload box: wait for them, as a visitor would.
            page.get_by_text("Test images of the run").wait_for(state="visible", timeout=ANSWER_SECONDS * 1000)
            upload(page, digit_images[3])
            wait_for_picture(page, PICTURE_WIDTH)
            clean = wait_for_scores(page)
            # The page shows what the Python function answers for the same file.
            expected, _, _ = respond(load_demo_model(str(digits_model)), {"path": str(digit_images[3])}, "none", 3)
            assert top_label(page) == next(iter(expected)) and clean.keys() == expected.keys()
            assert list(clean.values()) == pytest.approx(list(expected.values()), abs=1e-4)
            assert "attention map" in page.inner_text("#note")

            page.click("#corruption input")
            page.get_by_role("option", name="gaussian_noise").click()
            at_three = wait_for_scores(page, other_than=clean)
            page.focus("#severity input[type=range]")
            page.keyboard.press("End")  # the slider to severity 5
            at_five = wait_for_scores(page, other_than=at_three)
            page.keyboard.press("Home")  # and to 1
            at_one = wait_for_scores(page, other_than=at_five)
            assert at_one not in (at_three, at_five)
            screenshot(page, tmp_path / "demo.png")
            assert Image.open(tmp_path / "demo.png").size[0] == 1280

            # A bad upload gets its reason in the page, and the app keeps serving.
            Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
            upload(page, tmp_path / "dot.png")
            page.wait_for_function("() => document.querySelector('#note').innerText.includes('Cannot answer')")
            assert "dot.png is 1x1 pixels, too small to show anything" in page.inner_text("#note")
            assert shown_scores(page) == {}
            upload(page, digit_images[7])
            after_the_refusal = wait_for_scores(page)
            assert "attention map" in page.inner_text("#note")
            page.locator(".gallery-item").nth(0).click()  # the run's first test image, a 0
            assert len(page.locator(".gallery-item").all()) == 10  # one per digit
            assert wait_for_scores(page, other_than=after_the_refusal)
        interrupt_a_server_thread(process)  # Ctrl-C, landing on a thread of the server rather than the main one
        # Closing lets the queue's job in flight (the last click's heat map) finish: on a busy machine that alone
        # has taken over 30 s.
        assert process.wait(120) == 0
        output = log.read_text()
        assert "vit-ft demo: stopped" in output and "Traceback" not in output


@pytest.mark.slow
def test_the_space_answers_in_a_browser_without_vit_ft(digits_model, digit_images, tmp_path):
    space = write_space(tmp_path / "space", "my-user/vit-digits")
    # The Space's app.py run as the Hub runs it (python app.py), where vit_ft cannot be imported, on the local model.
    program = import_blocker("vit_ft") + textwrap.dedent(
        """
        import runpy
        sys.path.insert(0, ".")
        runpy.run_path("app.py", run_name="__main__")
        """
    )
    environment = {
        **server_environment(space),
        "MODEL_ID": str(digits_model),
        "GRADIO_SERVER_PORT": str(free_port()),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
    }
    with served([sys.executable, "-c", program], space, environment) as (_, url, _):
        with browser_page(url) as page:
            upload(page, digit_images[3])
            wait_for_picture(page, PICTURE_WIDTH)
            scores = wait_for_scores(page)
            expected, _, _ = respond(load_demo_model(str(digits_model)), {"path": str(digit_images[3])}, "none", 3)
            assert top_label(page) == next(iter(expected))
            assert list(scores.values()) == pytest.approx(list(expected.values()), abs=1e-4)
            screenshot(page, tmp_path / "space.png")
    assert (tmp_path / "space.png").stat().st_size > 0
