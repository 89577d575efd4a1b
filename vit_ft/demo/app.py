"""The Gradio app of `vit-ft demo`, and serving it until Ctrl-C. The only module of vit_ft that imports Gradio.

vit-ft demo --model outputs/digits [--port 7860] [--host 127.0.0.1]
"""

import importlib
import socket
import tempfile
import time
from pathlib import Path

from ..data import MissingExtraError
from .answers import CORRUPTION_CHOICES, NO_CORRUPTION, DemoModel, load_demo_model
from .examples import write_examples
from .uploads import ImageRefused, read_upload

INSTALL_HINT = "pip install 'vit-ft[demo]' (in a clone: pip install -e \".[demo]\")"
# System fonts only: Gradio's default theme asks Google Fonts for its typeface, which a demo run offline (or a
# visitor who should not be tracked) does without.
_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
_MONO_FONTS = ["ui-monospace", "monospace"]
# An upload is shown filling its box, with square pixels: an 8x8 digit would otherwise be a dot.
_CSS = "#image img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"


def import_gradio():
    """Gradio, the `demo` extra, or a MissingExtraError that says in one line how to install it."""
    try:
        return importlib.import_module("gradio")
    except ImportError as error:
        raise MissingExtraError(f"gradio is not installed (vit-ft demo needs it): {INSTALL_HINT}") from error


def respond(model: DemoModel, upload: dict | None, corruption: str, severity: float) -> tuple:
    """
    The app's outputs for `upload`, the image component's value as the page sends it (its file's `path` and
    `orig_name`; None once the image is cleared): the top classes, the picture, the note. An upload the demo refuses
    gets its one-line reason as the note, and the app goes on serving.
    """
    if upload is None:
        return None, None, ""
    if upload.get("path") is None:  # Gradio uploads every source (file, paste, webcam) as a file; a client may not
        return None, None, "**Cannot answer:** the image came without its file: upload it as a file."
    try:
        image, conversion = read_upload(upload["path"], upload.get("orig_name"))
    except ImageRefused as error:
        return None, None, f"**Cannot answer:** {error}"
    answer = model.answer(image, corruption, int(severity))
    note = answer.note if conversion is None else f"{answer.note} The upload is {conversion}."
    return answer.scores, answer.picture, note


def build_app(model: DemoModel, title: str, examples: list[Path]):
    """The demo's page: an image in, with a corruption and its severity; the top classes, the picture and a note."""
    gr = import_gradio()

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(
            f"# {title}\nDrop an image in, paste one or take one with the webcam: the model's top classes "
            "and where it looked. Pick a corruption to see how the answer holds up on a lower-quality copy "
            "of the same image."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(
                    label="Image",
                    type="filepath",
                    sources=["upload", "clipboard", "webcam"],
                    height=256,
                    elem_id="image",
                )
                corruption = gr.Dropdown(
                    list(CORRUPTION_CHOICES), value=NO_CORRUPTION, label="Corruption", elem_id="corruption"
                )
                severity = gr.Slider(1, 5, value=3, step=1, label="Severity (1 mild, 5 strong)", elem_id="severity")
                if examples:
                    gr.Examples([[str(path)] for path in examples], inputs=[image], label="Test images of the run")
            with gr.Column():
                scores = gr.Label(num_top_classes=model.top_k, label="Top classes", elem_id="scores")
                picture = gr.Image(label="What the model saw", interactive=False, elem_id="picture")
                note = gr.Markdown(elem_id="note")
        controls = [image, corruption, severity]
        for control in controls:
            # preprocess=False: Gradio would open the file with PIL first, and a file that is not an image would
            # fail there with PIL's message; `read_upload` says what is wrong with it instead.
            control.change(
                lambda *values: respond(model, *values), controls, [scores, picture, note], preprocess=False
            )
    return app


def check_port_free(host: str, port: int) -> None:
    """An OSError naming the port when `host:port` cannot be listened on, before the model is loaded."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed port is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise OSError(
                f"--port {port}: cannot listen on {host}:{port} ({error.strerror}): stop what uses it, or "
                "choose another port with --port."
            ) from None


def serve_demo(
    model_source: str,
    onnx_file: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    base_model: str | None = None,
    trust_remote_code: bool = False,
) -> None:
    """
    Serves the demo of `model_source` (a model or adapter folder, a Hub id or a `vit-ft export` folder, as
    `load_predictor` takes them) on `host`, at `port` or the first free one from 7860, until Ctrl-C. Gradio, the
    port and the model are checked in that order, each failing in one line.
    """
    gr = import_gradio()
    if port is not None:
        check_port_free(host, port)
    model = load_demo_model(model_source, onnx_file, base_model, trust_remote_code)
    with tempfile.TemporaryDirectory(prefix="vit_ft_demo_") as examples_dir:
        examples = write_examples(model_source, Path(examples_dir))
        app = build_app(model, f"vit-ft demo: {Path(model_source).name}", examples)
        app.queue(default_concurrency_limit=1)  # one model, one image at a time
        theme = gr.themes.Default(font=_FONTS, font_mono=_MONO_FONTS)
        app.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            ssr_mode=False,
            allowed_paths=[examples_dir],
            theme=theme,
            css=_CSS,
        )
        print(f"vit-ft demo: serving {model_source} at {app.local_url} (Ctrl-C stops it)", flush=True)
        try:
            # The server runs in its own threads until Ctrl-C. A signal that lands on one of them is handled in this
            # thread only when it next runs bytecode: a wait without end (Event().wait()) never gets to.
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("vit-ft demo: stopped", flush=True)
        finally:
            app.close()
