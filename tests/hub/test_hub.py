"""The Hub: `vit-ft push` and `push_to_hub: true`, through a FakeHub at HfApi's network boundary (see conftest)."""

import json
import re
import shlex
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from peft import LoraConfig, PeftModel, get_peft_model
from PIL import Image
from transformers import ViTImageProcessor

from tests.conftest import run_without_vit_ft, tiny_config
from tests.test_train_run import QUICK, RECIPE
from tests.training.test_distillation import distil_flags
from tests.training.test_lora import lora_flags
from vit_ft import ViTForImageClassification, ViTModel
from vit_ft.checkpoints.loading import load_model
from vit_ft.cli import main
from vit_ft.data.arguments import DataArguments
from vit_ft.evaluation.evaluate import evaluate_model
from vit_ft.evaluation.plots import plot_training_curves
from vit_ft.hub.card import build_model_card
from vit_ft.hub.push import PushError
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training

TINY_OVERRIDES = json.dumps(
    {
        "image_size": 16,
        "patch_size": 4,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
    }
)
TRAIN = [
    *QUICK,
    "--model_overrides",
    TINY_OVERRIDES,
    "--max_steps",
    "4",
    "--eval_strategy",
    "steps",
    "--eval_steps",
    "2",
    "--save_strategy",
    "steps",
    "--save_steps",
    "2",
]
AUTO_MAP = {
    "AutoConfig": "configuration_vit_ft.ViTConfig",
    "AutoModel": "modeling_vit_ft.ViTModel",
    "AutoModelForImageClassification": "modeling_vit_ft.ViTForImageClassification",
}
# What a repo pushed from a training output holds; checkpoints and logs stay local.
MODEL_REPO_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "configuration_vit_ft.py",
    "modeling_vit_ft.py",
    "preprocessor_config.json",
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "test_results.json",
    "run_results.json",
    "training_args.bin",
    "vit_ft_recipe.yaml",
    "training_curves.png",
    "confusion_matrix.png",
    "attention_maps.png",
}

# Runs where vit_ft cannot be imported: the card's snippet for machines without vit-ft, on the pushed repo.
_SNIPPET_CHILD = """
import sys

import torch

snippet, pixels, out = sys.argv[1:]
scope = {}
exec(open(snippet).read(), scope)
assert "vit_ft" not in sys.modules
assert type(scope["model"]).__module__.startswith("transformers_modules"), type(scope["model"])
with torch.no_grad():
    inputs = torch.load(pixels)
    logits = scope["model"].eval()(inputs).logits
    hidden = scope["encoder"].eval()(inputs).last_hidden_state
torch.save({"logits": logits, "hidden": hidden, "predictions": scope["predictions"]}, out)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The output directory of a tiny digits run, scored under corruptions, with TensorBoard-like logs beside."""
    output = tmp_path_factory.mktemp("trained") / "tiny-digits"
    run_training(read_recipe(RECIPE, [*TRAIN, "--output_dir", str(output)]))
    evaluate_model(
        str(output),
        DataArguments(dataset_name="digits", max_eval_samples=40),
        "test",
        ["gaussian_noise", "jpeg"],
        severity=3,
    )
    (output / "runs").mkdir()
    (output / "runs" / "events.out.tfevents").write_bytes(b"logs")
    return output


@pytest.fixture
def model_dir(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "tiny-digits"))


def _snippets(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, re.DOTALL)


def _image(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_push_uploads_a_repo_that_loads_without_vit_ft(fake_hub, model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "https://hub.example.org")  # as HF_ENDPOINT sets it
    main(["push", "--model", str(model_dir), "--repo_id", "tiny-digits", "--private"])

    assert fake_hub.repos == {
        "tester/tiny-digits": {
            "private": True,
            "endpoint": "https://hub.example.org",
            "authorization": "Bearer hf_fake_token_for_tests",
        }
    }
    repo = fake_hub.files("tester/tiny-digits")
    pushed = _contents(repo)
    assert set(pushed) == MODEL_REPO_FILES | {"robustness_test.json"}
    local = _contents(model_dir)
    assert all(pushed[name] == local[name] for name in pushed)
    assert json.loads(pushed["config.json"])["auto_map"] == AUTO_MAP
    card = pushed["README.md"].decode()
    assert fake_hub.validated_cards == [card]  # upload_folder had the Hub check the metadata first

    # The card's snippet for machines without vit-ft, run on the pushed files, gives the local model's outputs.
    model = ViTForImageClassification.from_pretrained(model_dir).eval()
    processor = ViTImageProcessor.from_pretrained(model_dir)
    pixels = processor(Image.open(_image(tmp_path / "image.png")), return_tensors="pt").pixel_values
    torch.save(pixels, tmp_path / "pixels.pt")
    without_vit_ft = _snippets(card)[1]
    assert "trust_remote_code=True" in without_vit_ft and "import vit_ft" not in without_vit_ft
    (tmp_path / "snippet.py").write_text(without_vit_ft.replace("tester/tiny-digits", str(repo)))
    run_without_vit_ft(_SNIPPET_CHILD, "snippet.py", "pixels.pt", "out.pt", workdir=tmp_path)
    out = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        logits = model(pixels).logits
        torch.testing.assert_close(out["logits"], logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(out["hidden"], model.vit(pixels).last_hidden_state, rtol=0, atol=1e-5)
    best = logits.softmax(-1)[0].topk(5)
    assert [p["label"] for p in out["predictions"]] == [model.config.id2label[i] for i in best.indices.tolist()]
    assert [p["score"] for p in out["predictions"]] == pytest.approx(best.values.tolist(), abs=1e-5)


@pytest.mark.slow
def test_the_card_snippet_with_vit_ft_loads_vit_ft_classes(fake_hub, model_dir, tmp_path, monkeypatch):
    main(["push", "--model", str(model_dir), "--repo_id", "tester/tiny-digits"])
    repo = fake_hub.files("tester/tiny-digits")
    with_vit_ft = _snippets((repo / "README.md").read_text())[0]
    assert "trust_remote_code" not in with_vit_ft
    monkeypatch.chdir(tmp_path)
    _image(tmp_path / "image.png")
    scope = {}
    exec(with_vit_ft.replace("tester/tiny-digits", str(repo)), scope)
    assert type(scope["model"]) is ViTForImageClassification and type(scope["encoder"]) is ViTModel
    assert len(scope["predictions"]) == 5


@pytest.mark.slow
def test_card_metadata_results_and_training(model_dir):
    results = json.loads((model_dir / "all_results.json").read_text())
    robustness = json.loads((model_dir / "robustness_test.json").read_text())
    text = str(build_model_card(model_dir, "tester/tiny-digits", license="apache-2.0"))
    card = ModelCard(text)  # huggingface_hub's parsing: the metadata, model-index included, must be valid
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "image-classification"
    assert data.license == "apache-2.0"
    assert {"vit_ft", "image-classification"} <= set(data.tags)
    assert data.base_model is None and data.datasets is None  # trained from scratch on the built-in digits
    assert set(data.metrics) == {"accuracy", "top_k_accuracy", "f1"}
    reported = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert reported == {
        (split, metric): results[f"{prefix}_{key}"]
        for prefix, split in (("eval", "validation"), ("test", "test"))
        for metric, key in (("accuracy", "accuracy"), ("top_k_accuracy", "top5_accuracy"), ("f1", "f1"))
    }
    assert {r.dataset_type for r in data.eval_results} == {"digits"}
    body = card.text
    assert f"| test | {results['test_accuracy']:.4f} | {results['test_top5_accuracy']:.4f} |" in body
    for corruption, metrics in robustness["corruptions"].items():
        change = metrics["accuracy"] - robustness["clean"]["accuracy"]
        assert f"| {corruption} | {metrics['accuracy']:.4f} |" in body and f"{change:+.4f} |" in body
    assert f"on {results['run_processes']} process, {results['run_hardware']}" in body
    assert "| learning_rate | `0.002` |" in body and "| max_steps | `4` |" in body
    assert "![training curves](training_curves.png)" in body and "(confusion_matrix.png)" in body


def test_license_comes_from_the_flag_then_the_recipe(model_dir):
    assert "license" not in build_model_card(model_dir, "tester/x").data.to_dict()
    recipe = yaml.safe_load((model_dir / "vit_ft_recipe.yaml").read_text())
    (model_dir / "vit_ft_recipe.yaml").write_text(yaml.safe_dump({**recipe, "license": "mit"}))
    assert build_model_card(model_dir, "tester/x").data.license == "mit"
    assert build_model_card(model_dir, "tester/x", license="cc-by-4.0").data.license == "cc-by-4.0"


@pytest.mark.slow
def test_a_distilled_student_card_names_its_teacher(fake_hub, trained, tmp_path):
    student = tmp_path / "student"
    run_training(
        read_recipe(RECIPE, distil_flags(trained, student, "--max_steps", "2", "--distillation_type", "hard"))
    )
    main(["push", "--model", str(student), "--repo_id", "tester/tiny-student"])
    card = ModelCard.load(fake_hub.files("tester/tiny-student") / "README.md")
    assert "distillation" in card.data.tags and card.data.library_name == "transformers"
    assert f"distilled from the teacher `{trained}` with hard distillation" in card.text
    assert f"| teacher_model_name_or_path | `{trained}` |" in card.text
    assert "| distillation_type | `hard` |" in card.text and "| distillation_alpha | `0.5` |" in card.text
    # A teacher on the Hub is linked.
    recipe = yaml.safe_load((student / "vit_ft_recipe.yaml").read_text())
    teacher = "facebook/deit-base-distilled-patch16-224"
    (student / "vit_ft_recipe.yaml").write_text(yaml.safe_dump({**recipe, "teacher_model_name_or_path": teacher}))
    assert f"teacher [{teacher}](https://huggingface.co/{teacher})" in build_model_card(student, "tester/s").text


def test_fields_of_methods_a_run_did_not_use_stay_off_the_card(model_dir):
    # The resolved recipe holds LoRA's and distillation's fields at their defaults.
    recipe = yaml.safe_load((model_dir / "vit_ft_recipe.yaml").read_text())
    assert recipe["lora_r"] == 8 and recipe["distillation_type"] == "soft" and recipe["peft_method"] is None
    card = build_model_card(model_dir, "tester/tiny-digits")
    assert "lora_r" not in card.text and "distillation" not in card.text and "corruption_seed" not in card.text
    assert "distillation" not in card.data.tags and "lora" not in card.data.tags


@pytest.fixture
def adapter(tmp_path, monkeypatch) -> tuple[Path, Path, PeftModel]:
    """
    A LoRA adapter directory as a `peft_method: lora` run leaves it, for a local base model that stands for the Hub
    id `tester/tiny-vit-base`; returns (adapter directory, base directory, the adapted model).
    """
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    ViTForImageClassification(tiny_config(num_labels=3)).save_pretrained(base_dir)
    labels = {i: name for i, name in enumerate("abcde")}
    model = ViTForImageClassification.from_pretrained(
        base_dir, id2label=labels, label2id={name: i for i, name in labels.items()}, ignore_mismatched_sizes=True
    )
    model.name_or_path = "tester/tiny-vit-base"  # what peft records as the base
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # LoRA's B starts at zero; a trained adapter changes the outputs
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    with monkeypatch.context() as offline:
        offline.setenv("HF_HUB_OFFLINE", "1")  # peft would look for the base's config.json on the Hub
        peft_model.save_pretrained(adapter_dir)
    record = {"id2label": labels, "label2id": model.config.label2id, "config_overrides": {}}
    (adapter_dir / "vit_ft_adapter.json").write_text(json.dumps(record))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(adapter_dir)
    results = {
        "eval_accuracy": 0.75,
        "eval_top5_accuracy": 1.0,
        "eval_f1": 0.7,
        "test_accuracy": 0.8,
        "test_top5_accuracy": 1.0,
        "test_f1": 0.78,
        "train_runtime": 65.0,
        "epoch": 3.0,
    }
    (adapter_dir / "all_results.json").write_text(json.dumps(results))
    recipe = {
        "model_name_or_path": "tester/tiny-vit-base",
        "dataset_name": "tester/letters",
        "peft_method": "lora",
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target": "qv",
        "learning_rate": 0.001,
    }
    (adapter_dir / "vit_ft_recipe.yaml").write_text(yaml.safe_dump(recipe))
    plot_training_curves([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}], adapter_dir / "training_curves.png")
    return adapter_dir, base_dir, peft_model.eval()


def test_a_lora_adapter_is_pushed_with_a_peft_card_that_loads_it(fake_hub, adapter, pixel_values, monkeypatch):
    adapter_dir, base_dir, peft_model = adapter
    main(["push", "--model", str(adapter_dir), "--repo_id", "tester/tiny-adapter"])
    repo = fake_hub.files("tester/tiny-adapter")
    assert set(_contents(repo)) == {
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "vit_ft_adapter.json",
        "preprocessor_config.json",
        "all_results.json",
        "vit_ft_recipe.yaml",
        "training_curves.png",
    }
    card = ModelCard.load(repo / "README.md")
    assert card.data.library_name == "peft" and card.data.base_model == "tester/tiny-vit-base"
    assert {"vit_ft", "image-classification", "lora"} <= set(card.data.tags)
    assert card.data.datasets == ["tester/letters"]
    assert "rank 4, alpha 8, on `q_proj`, `v_proj`" in card.text
    assert "| lora_r | `4` |" in card.text and "| peft_method | `lora` |" in card.text
    with_vit_ft, with_peft = _snippets(card.text)
    assert 'model = load_model("tester/tiny-adapter")' in with_vit_ft
    # The peft snippet, with the base and the pushed repo where the Hub would have them, gives the adapted outputs.
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename: str(Path(repo_id) / filename))
    scope = {}
    exec(with_peft.replace("tester/tiny-vit-base", str(base_dir)).replace("tester/tiny-adapter", str(repo)), scope)
    assert isinstance(scope["model"], PeftModel)
    assert scope["model"].config.id2label == peft_model.config.id2label
    with torch.no_grad():
        torch.testing.assert_close(
            scope["model"].eval()(pixel_values).logits, peft_model(pixel_values).logits, rtol=0, atol=1e-5
        )


@pytest.mark.slow
def test_a_lora_run_is_pushed_as_an_adapter_its_card_snippets_load(
    fake_hub, trained, tmp_path, pixel_values, monkeypatch
):
    output = tmp_path / "lora"
    run_training(read_recipe(RECIPE, lora_flags(trained, output, "--max_steps", "2", "--lora_r", "4")))
    main(["push", "--model", str(output), "--repo_id", "tester/tiny-lora"])
    repo = fake_hub.files("tester/tiny-lora")
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "vit_ft_adapter.json",
        "preprocessor_config.json",
        "README.md",
        "all_results.json",
        "vit_ft_recipe.yaml",
        "confusion_matrix.png",
    } <= set(_contents(repo))
    assert not (repo / "model.safetensors").exists() and not (repo / "config.json").exists()
    card = ModelCard.load(repo / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags
    assert card.data.base_model is None  # the base was a local directory: its path means nothing on the Hub
    assert "| peft_method | `lora` |" in card.text and "| lora_r | `4` |" in card.text
    # Both snippets, with the base and the pushed repo where the Hub would have them, give the trained outputs.
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, filename: str(Path(repo_id) / filename))
    pixels = pixel_values[:, :, :16, :16]
    with torch.no_grad():
        expected = load_model(str(output)).eval()(pixels).logits
        for snippet in _snippets(card.text):
            scope = {}
            exec(snippet.replace("BASE_MODEL_ID_OR_PATH", str(trained)).replace("tester/tiny-lora", str(repo)), scope)
            torch.testing.assert_close(scope["model"].eval()(pixels).logits, expected, rtol=0, atol=1e-6)
    assert 'load_model("tester/tiny-lora", base_model="BASE_MODEL_ID_OR_PATH")' in _snippets(card.text)[0]


def test_an_adapter_of_a_local_base_leaves_base_model_out_of_the_metadata(adapter):
    adapter_dir, base_dir, _ = adapter
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base_dir.resolve())
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    card = build_model_card(adapter_dir, "tester/tiny-adapter")
    assert card.data.base_model is None  # a local path is no Hub model id
    assert f"The base model was a local directory when the adapter was trained ({base_dir.resolve()})" in card.text
    assert 'load_model("tester/tiny-adapter", base_model="BASE_MODEL_ID_OR_PATH")' in card.text


def test_a_directory_without_a_run_gets_a_card_that_claims_no_training(tmp_path):
    ViTForImageClassification(tiny_config()).save_pretrained(tmp_path / "converted")  # as `vit-ft convert` leaves
    card = build_model_card(tmp_path / "converted", "tester/converted")
    assert card.data.eval_results is None and card.data.base_model is None and card.data.datasets is None
    assert (
        "A vit-ft Vision Transformer image classifier (ViT, 2 layers of width 32, 32x32 images in 4x4 patches)."
        in card.text
    )
    assert "## Training" not in card.text and "## Results" not in card.text
    assert len(_snippets(card.text)) == 2


@pytest.mark.slow
def test_push_to_hub_in_a_recipe_pushes_checkpoints_then_the_run_with_its_card(fake_hub, tmp_path):
    output = tmp_path / "digits-push"
    run_training(
        read_recipe(
            RECIPE,
            [
                *TRAIN,
                "--output_dir",
                str(output),
                "--push_to_hub",
                "true",
                "--hub_model_id",
                "tester/digits-push",
                "--hub_private_repo",
                "true",
                "--hub_strategy",
                "every_save",
                "--hub_always_push",
                "true",
                "--license",
                "apache-2.0",
            ],
        )
    )
    assert fake_hub.repos["tester/digits-push"]["private"] is True
    messages = [commit["message"] for commit in fake_hub.commits]
    assert messages == ["Training in progress, step 2", "Training in progress, step 4", "End of training"]
    repo = fake_hub.files("tester/digits-push")
    pushed = _contents(repo)
    assert set(pushed) == MODEL_REPO_FILES
    assert json.loads(pushed["config.json"])["auto_map"] == AUTO_MAP
    assert pushed["README.md"] == (output / "README.md").read_bytes()
    card = ModelCard.load(repo / "README.md")
    results = json.loads((output / "all_results.json").read_text())
    assert card.data.library_name == "transformers" and "vit_ft" in card.data.tags
    assert card.data.license == "apache-2.0"  # the recipe's license field
    reported = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert reported[("test", "accuracy")] == results["test_accuracy"]
    assert f"on {results['run_processes']} process, {results['run_hardware']}" in card.text
    assert all(content == (output / name).read_bytes() for name, content in pushed.items())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hub_model_id", "tester/digits-push"], "push_to_hub: true needs a Hub token"),
        (["--hub_model_id", "tester/digits/push"], "hub_model_id='tester/digits/push' is not a valid Hub repo id"),
        ([], "without hub_model_id names the repo after output_dir, 'run 1', which is not a valid Hub repo id"),
    ],
    ids=["no token", "invalid hub_model_id", "invalid output_dir name"],
)
def test_push_to_hub_settings_fail_before_any_data_is_loaded(fake_hub, tmp_path, monkeypatch, flags, message):
    if "token" in message:
        monkeypatch.delenv("HF_TOKEN")
        monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr("vit_ft.train.load_image_datasets", pytest.fail)
    output = tmp_path / "run 1"
    with pytest.raises(ValueError, match=re.escape(message)):
        run_training(read_recipe(RECIPE, [*TRAIN, "--output_dir", str(output), "--push_to_hub", "true", *flags]))
    assert not output.exists() and not fake_hub.repos


@pytest.mark.slow
def test_a_failed_push_after_training_keeps_the_run_and_gives_the_retry_command(fake_hub, tmp_path):
    output = tmp_path / "digits-fail"
    fake_hub.fail_commits = ConnectionError("the Hub cannot be reached")
    with pytest.raises(PushError) as failure:
        run_training(
            read_recipe(
                RECIPE,
                [
                    *TRAIN,
                    "--output_dir",
                    str(output),
                    "--push_to_hub",
                    "true",
                    "--hub_model_id",
                    "tester/digits-fail",
                    "--hub_strategy",
                    "end",
                ],
            )
        )
    assert f"vit-ft push --model {output} --repo_id tester/digits-fail\n" in f"{failure.value}\n"
    assert "ConnectionError: the Hub cannot be reached" in str(failure.value)
    assert MODEL_REPO_FILES <= set(_contents(output))
    assert "test_accuracy" in json.loads((output / "all_results.json").read_text())


def test_a_failed_push_keeps_the_local_files_and_its_retry_command_works(fake_hub, adapter, capsys):
    adapter_dir = adapter[0]
    before = _contents(adapter_dir)
    fake_hub.fail_commits = ConnectionError("the Hub cannot be reached")
    flags = [
        "--model",
        str(adapter_dir),
        "--repo_id",
        "tester/tiny-adapter",
        "--private",
        "--revision",
        "dev",
        "--commit_message",
        "first try",
    ]
    with pytest.raises(SystemExit) as failure:
        main(["push", *flags])
    command = (
        f"vit-ft push --model {adapter_dir} --repo_id tester/tiny-adapter --private --revision dev "
        "--commit_message 'first try'"
    )
    assert command in str(failure.value)
    after = _contents(adapter_dir)
    assert set(after) == set(before) and all(after[name] == before[name] for name in before if name != "README.md")
    assert not fake_hub.commits

    fake_hub.fail_commits = None
    main(shlex.split(command)[1:])
    assert fake_hub.branches == [("tester/tiny-adapter", "dev")] * 2  # on the failed try and on the retry
    assert [(c["revision"], c["message"]) for c in fake_hub.commits] == [("dev", "first try")]
    assert (fake_hub.files("tester/tiny-adapter", "dev") / "adapter_model.safetensors").read_bytes() == before[
        "adapter_model.safetensors"
    ]
    assert "Pushed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--repo_id", "bad name"], "--repo_id='bad name' is not a valid Hub repo id"),
        (["--repo_id", "tester/x", "--model", "missing"], "holds neither config.json (a model) nor adapter_config"),
    ],
)
def test_push_checks_its_arguments_before_any_request(fake_hub, adapter, flags, message):
    with pytest.raises(SystemExit, match=re.escape(message)):
        main(["push", "--model", str(adapter[0]), *flags])
    assert not fake_hub.repos


def test_push_without_a_token_says_how_to_give_one(fake_hub, adapter, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(SystemExit, match="set the HF_TOKEN environment variable or run `hf auth login`"):
        main(["push", "--model", str(adapter[0]), "--repo_id", "tester/x"])
    assert not fake_hub.repos
