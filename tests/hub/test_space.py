"""`vit-ft push --with_demo`: a Gradio Space beside the model repo, which loads the model without vit-ft."""

import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import import_blocker, tiny_config
from tests.hub.test_hub import RECIPE, TRAIN
from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.cli import main
from vit_ft.hub.space import REQUIREMENTS, write_space
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

SPACE_FILES = {"app.py", "attention_maps.py", "requirements.txt", "README.md"}


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    model_dir = tmp_path / "tiny"
    ViTForImageClassification(tiny_config(id2label={i: f"class_{i}" for i in range(5)})).save_pretrained(model_dir)
    default_processor(32).save_pretrained(model_dir)
    return model_dir


def _front_matter(readme: str) -> dict:
    return yaml.safe_load(readme.split("---")[1])


def test_push_with_demo_pushes_a_gradio_space_that_the_card_links(fake_hub, tiny_model, capsys):
    main(["push", "--model", str(tiny_model), "--repo_id", "tiny", "--with_demo"])

    endpoint = fake_hub.repos["tester/tiny"]["endpoint"]
    assert fake_hub.repos["tester/tiny-demo"] == {
        "private": None,
        "endpoint": endpoint,
        "authorization": "Bearer hf_fake_token_for_tests",
        "repo_type": "space",
        "space_sdk": "gradio",
    }
    space = fake_hub.files("tester/tiny-demo")
    assert {path.name for path in space.iterdir()} == SPACE_FILES
    front_matter = _front_matter((space / "README.md").read_text())
    assert front_matter["sdk"] == "gradio" and front_matter["app_file"] == "app.py"
    assert front_matter["models"] == ["tester/tiny"]
    assert (space / "requirements.txt").read_text().splitlines() == list(REQUIREMENTS)
    assert 'os.environ.get("MODEL_ID", "tester/tiny")' in (space / "app.py").read_text()
    card = (fake_hub.files("tester/tiny") / "README.md").read_text()
    assert "[tester/tiny-demo](https://huggingface.co/spaces/tester/tiny-demo)" in card
    assert capsys.readouterr().out.splitlines()[-1] == "Pushed its Gradio demo to the Space tester/tiny-demo"


def test_push_without_demo_pushes_no_space_and_the_card_links_none(fake_hub, tiny_model):
    main(["push", "--model", str(tiny_model), "--repo_id", "tiny"])
    assert list(fake_hub.repos) == ["tester/tiny"]
    assert "huggingface.co/spaces" not in (fake_hub.files("tester/tiny") / "README.md").read_text()


def test_a_repo_id_without_room_for_the_demo_suffix_stops_before_any_request(fake_hub, tiny_model):
    long_id = "tester/" + "a" * 92  # 96 characters, the Hub's limit: "-demo" makes it too long
    with pytest.raises(SystemExit, match="--with_demo's Space id"):
        main(["push", "--model", str(tiny_model), "--repo_id", long_id, "--with_demo"])
    assert fake_hub.repos == {} and fake_hub.commits == []


def test_the_space_app_answers_without_vit_ft(tiny_model, tmp_path):
    # The written app.py in a fresh interpreter where vit_ft cannot be imported: it loads the model folder with
    # transformers alone (MODEL_ID) and gives the top classes and the picture under the attention map.
    space = write_space(tmp_path / "space", "tester/tiny")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    code = import_blocker("vit_ft") + textwrap.dedent(
        """
        import json, runpy
        from PIL import Image
        space, image = sys.argv[1:]
        sys.path.insert(0, space)
        app = runpy.run_path(f"{space}/app.py", run_name="space_app")  # not __main__: no server
        labels, picture = app["classify"](Image.open(image))
        print(json.dumps({"labels": labels, "shape": list(picture.shape), "dtype": str(picture.dtype),
                          "vit_ft": [name for name in sys.modules if name.startswith("vit_ft")]}))
        """
    )
    environment = {
        "MODEL_ID": str(tiny_model),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    result = subprocess.run(
        [sys.executable, "-c", code, str(space), str(tmp_path / "red.png")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(answer["labels"]) == 5 and set(answer["labels"]) <= {f"class_{i}" for i in range(5)}
    assert sum(answer["labels"].values()) == pytest.approx(1.0, abs=1e-5)
    assert answer["shape"] == [256, 256, 3] and answer["dtype"] == "uint8"  # 32x32 drawn 8 times as large
    assert answer["vit_ft"] == []


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "with_demo: true pushes a demo Space at the end of a push_to_hub run: set push_to_hub: true"),
        (["--push_to_hub", "true", "--hub_model_id", "tester/" + "a" * 92], "--with_demo's Space id"),
    ],
    ids=["without push_to_hub", "no room for -demo"],
)
def test_with_demo_in_a_recipe_is_checked_before_the_run(fake_hub, tmp_path, flags, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        read_recipe(RECIPE, [*TRAIN, "--output_dir", str(tmp_path / "run"), "--with_demo", "true", *flags])


@pytest.mark.slow
def test_push_to_hub_with_demo_pushes_the_space_after_the_model_and_the_card_links_it(fake_hub, tmp_path):
    output = tmp_path / "digits-push"
    flags = ["--push_to_hub", "true", "--hub_strategy", "end", "--hub_model_id", "tester/digits-push"]
    run_training(read_recipe(RECIPE, [*TRAIN, "--output_dir", str(output), *flags, "--with_demo", "true"]))
    assert [(commit["repo_id"], commit["message"]) for commit in fake_hub.commits][-2:] == [
        ("tester/digits-push", "End of training"),
        ("tester/digits-push-demo", "Gradio demo of the model, from vit-ft push --with_demo"),
    ]
    assert fake_hub.repos["tester/digits-push-demo"]["repo_type"] == "space"
    assert _front_matter((fake_hub.files("tester/digits-push-demo") / "README.md").read_text())["models"] == [
        "tester/digits-push"
    ]
    card = (fake_hub.files("tester/digits-push") / "README.md").read_text()
    assert "[tester/digits-push-demo](https://huggingface.co/spaces/tester/digits-push-demo)" in card
