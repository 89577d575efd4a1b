"""What `vit-ft demo` computes for an upload, tested on the app's Python function (`respond`) with a tiny model:
the answer, its attention map, the corruptions, and a one-line reason for each upload it refuses."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import import_blocker, tiny_config
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.demo.answers import NO_MAP_NOTE, load_demo_model
from vit_ft.demo.app import respond
from vit_ft.demo.examples import write_examples
from vit_ft.export.onnx_export import export_onnx
from vit_ft.output_dir import RECIPE

LABELS = {i: f"class_{i}" for i in range(5)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    ViTForImageClassification(tiny_config(id2label=LABELS)).save_pretrained(folder)
    default_processor(32).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory) -> str:
    return str(export_onnx(model_dir, str(tmp_path_factory.mktemp("export") / "tiny_onnx"), quantize="int8"))


@pytest.fixture(scope="module")
def model(model_dir):
    return load_demo_model(model_dir)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    """A 60x45 RGB image with a bright square: something for the corruptions to change."""
    pixels = np.random.default_rng(0).integers(0, 80, (45, 60, 3), dtype=np.uint8)
    pixels[10:30, 20:45] = 230
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(pixels).save(path)
    return str(path)


def _upload(path, name: str | None = None) -> dict:
    """The image component's value as the page sends it."""
    return {"path": str(path), "orig_name": name or str(path).rsplit("/", 1)[-1]}


def test_an_upload_gets_the_top_classes_and_the_attention_map(model, photo):
    scores, picture, note = respond(model, _upload(photo), "none", 3)
    assert len(scores) == 5 and set(scores) == set(LABELS.values())
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8  # the 32x32 input drawn 8 times as large
    assert "attention map" in note
    # The map changes the picture: the same image without it is the plain model input.
    plain = np.asarray(Image.open(photo).convert("RGB").resize((32, 32), Image.Resampling.BICUBIC))
    assert np.abs(picture[::8, ::8].astype(int) - plain.astype(int)).mean() > 5


def test_the_corruption_and_its_severity_change_the_scores_and_the_same_choice_repeats(model, photo):
    clean, _, _ = respond(model, _upload(photo), "none", 3)
    assert respond(model, _upload(photo), "none", 5)[0] == clean  # severity alone does nothing
    for corruption in ("gaussian_noise", "gaussian_blur", "jpeg", "low_resolution"):
        mild, _, _ = respond(model, _upload(photo), corruption, 1)
        strong, _, _ = respond(model, _upload(photo), corruption, 5)
        assert strong != mild and strong != clean, corruption
        assert respond(model, _upload(photo), corruption, 5)[0] == strong  # seeded noise: the slider gives it back


def _bad_upload(kind: str, folder) -> str:
    path = folder / {"text": "notes.txt", "renamed": "photo.png", "tiny": "dot.png", "huge": "huge.png"}[kind]
    if kind in ("text", "renamed"):
        path.write_text("not an image")
    elif kind == "tiny":
        Image.new("RGB", (1, 1), (255, 0, 0)).save(path)
    else:
        Image.new("1", (10_000, 10_000)).save(path)  # 100 megapixels in a few kilobytes
    return str(path)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("text", "notes.txt is not an image file PIL can read: upload a PNG, JPEG"),
        ("renamed", "photo.png is not an image file PIL can read: upload a PNG, JPEG"),
        ("tiny", "dot.png is 1x1 pixels, too small to show anything: upload an image at least 4 pixels on each side."),
        ("huge", "huge.png is 10000x10000 pixels (100 megapixels), more than the demo's 40: downscale it first"),
    ],
)
def test_an_upload_that_cannot_be_answered_gets_one_line_naming_it(model, photo, tmp_path, kind, reason):
    scores, picture, note = respond(model, _upload(_bad_upload(kind, tmp_path)), "jpeg", 3)
    assert (scores, picture) == (None, None)
    assert note.startswith(f"**Cannot answer:** {reason}") and "\n" not in note
    assert respond(model, _upload(photo), "none", 3)[0] is not None  # and the next upload is answered


@pytest.mark.parametrize(
    "mode, conversion", [("CMYK", "CMYK, converted to RGB"), ("I;16", "16-bit, scaled to 8 bits")]
)
def test_cmyk_and_16_bit_images_are_answered_and_the_note_says_how_they_were_read(model, tmp_path, mode, conversion):
    grey = np.linspace(0, 1, 40 * 50).reshape(40, 50)
    if mode == "CMYK":
        path = tmp_path / "print.jpg"
        Image.fromarray((grey * 255).astype(np.uint8)).convert("CMYK").save(path)
    else:
        path = tmp_path / "scan.png"
        Image.fromarray((grey * 65535).astype(np.uint16)).save(path)
    assert Image.open(path).mode == mode
    scores, picture, note = respond(model, _upload(path), "none", 3)
    assert len(scores) == 5 and picture.shape == (256, 256, 3)
    assert note.endswith(f"The upload is {conversion}.")


def test_a_cleared_image_clears_the_answer(model):
    assert respond(model, None, "none", 3) == (None, None, "")


@pytest.mark.parametrize("onnx_file, tolerance", [(None, 1e-4), ("model_quantized.onnx", 0.05)])
def test_an_export_gives_the_models_scores_and_says_it_has_no_map(model, export_dir, photo, onnx_file, tolerance):
    from_export = load_demo_model(export_dir, onnx_file)
    scores, picture, note = respond(from_export, _upload(photo), "gaussian_blur", 2)
    expected, _, _ = respond(model, _upload(photo), "gaussian_blur", 2)
    assert scores.keys() == expected.keys()
    assert list(scores.values()) == pytest.approx(list(expected.values()), abs=tolerance)  # int8 weights: close
    assert note == NO_MAP_NOTE and picture.shape == (256, 256, 3)


def test_the_examples_are_the_first_test_image_of_each_class_of_the_runs_data(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RECIPE).write_text(yaml.safe_dump({"dataset_name": "digits"}))
    written = write_examples(str(tmp_path / "run"), tmp_path / "examples")
    assert [path.name for path in written] == [f"{digit}_{digit}.png" for digit in range(10)]
    assert Image.open(written[0]).size == (8, 8)


def test_examples_come_from_the_runs_test_folder_and_none_without_a_recipe(model_dir, tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / "test" / label).mkdir(parents=True)
        Image.new("RGB", (12, 12), (9, 9, 9)).save(tmp_path / "test" / label / "001.jpg")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RECIPE).write_text(yaml.safe_dump({"test_dir": str(tmp_path / "test")}))
    written = write_examples(str(tmp_path / "run"), tmp_path / "examples")
    assert [path.name for path in written] == ["cat_0.png", "dog_1.png"]
    assert write_examples(model_dir, tmp_path / "none") == []  # a folder no run wrote: no recipe, no examples


def test_import_vit_ft_and_its_command_line_do_not_import_gradio():
    code = "import sys, vit_ft, vit_ft.cli; vit_ft.cli.build_parser(); print('gradio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_serving_an_export_in_the_demo_needs_no_model_code(export_dir, photo):
    # A fresh interpreter where vit_ft's model package cannot be imported: the page is built and answers an upload
    # from the export, and neither the model package nor transformers' modeling code is loaded.
    code = import_blocker("vit_ft.model") + textwrap.dedent(
        """
        import json
        from vit_ft.demo.answers import load_demo_model
        from vit_ft.demo.app import build_app, respond
        export_dir, photo = sys.argv[1:]
        model = load_demo_model(export_dir)
        build_app(model, "export", [])
        scores, picture, note = respond(model, {"path": photo, "orig_name": "photo.png"}, "jpeg", 4)
        loaded = [name for name in sys.modules if name.startswith(("vit_ft.model", "vit_ft.checkpoints", "peft"))
                  or name in ("transformers.modeling_utils", "transformers.pipelines")]
        print(json.dumps({"classes": len(scores), "gradio": "gradio" in sys.modules, "loaded": loaded}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code, export_dir, photo], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"classes": 5, "gradio": True, "loaded": []}
