"""Nothing lost, nothing silently wrong, in export and serving: an export never writes into another folder's files,
replaces an earlier export only as a whole and only when told, is moved into place complete; an ONNX file is served
only from its export's onnx/, with as many logits as labels, and never for weights it was not exported from."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from tests.conftest import tiny_config
from tests.test_cli import assert_one_line, files, vit_ft_cli
from vit_ft import ViTForImageClassification, load_predictor
from vit_ft.checkpoints.loading import default_processor
from vit_ft.evaluation.predict import predict_images
from vit_ft.evaluation.predictor import TorchPredictor
from vit_ft.export.onnx_export import add_onnx_models, export_onnx
from vit_ft.export.provenance import WEIGHTS_DIGEST_KEY, weights_digest
from vit_ft.export.runtime import OnnxClassifier, _check_output_width
from vit_ft.output_dir import remove_run

DIGITS = {i: str(i) for i in range(10)}
RECIPE_TEXT = "dataset_name: digits\nseed: 0\ntrain_val_split: 0.1\n"


def _save_model(folder: Path, labels: dict[int, str], seed: int = 0) -> Path:
    """A tiny model with `labels`, its processor and a recipe, saved in `folder`."""
    torch.manual_seed(seed)
    config = tiny_config(
        num_labels=len(labels),
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
        initializer_range=0.5,
    )
    ViTForImageClassification(config).save_pretrained(folder)
    default_processor(32).save_pretrained(folder)
    (folder / "vit_ft_recipe.yaml").write_text(RECIPE_TEXT)
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _save_model(tmp_path_factory.mktemp("digits") / "model", DIGITS)


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory) -> Path:
    return _save_model(tmp_path_factory.mktemp("three") / "model", {0: "a", 1: "b", 2: "c"}, seed=1)


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory) -> Path:
    """The digits model exported with int8: copy it before changing it."""
    return export_onnx(str(model_dir), str(tmp_path_factory.mktemp("exports") / "digits_onnx"), quantize="int8")


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def _copy(folder: Path, to: Path) -> Path:
    return Path(shutil.copytree(folder, to))


def _leftovers(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("_partial_"))


# Defect 1: a stale onnx/ beside retrained weights was served; now the weights are, and onnx/ goes with its run.


def test_a_folder_with_weights_and_onnx_serves_its_weights_and_its_onnx_only_when_they_match(
    model_dir, three_class_model, tmp_path
):
    folder = _copy(model_dir, tmp_path / "digits")
    add_onnx_models(folder)  # as `vit-ft push --with_onnx`
    assert isinstance(load_predictor(str(folder)), TorchPredictor)
    served = load_predictor(str(folder), onnx_file="model_quantized.onnx")
    assert isinstance(served, OnnxClassifier) and served.id2label == DIGITS
    # The folder is trained again (here: another model saved over it) and onnx/ is left behind.
    for name in ("config.json", "model.safetensors"):
        shutil.copy(three_class_model / name, folder / name)
    predictor = load_predictor(str(folder))
    assert isinstance(predictor, TorchPredictor) and predictor.id2label == {0: "a", 1: "b", 2: "c"}
    for file in ("model.onnx", "model_quantized.onnx"):
        with pytest.raises(ValueError) as error:
            load_predictor(str(folder), onnx_file=file)
        assert str(error.value) == (
            f"{folder / 'onnx' / file} was exported from other weights, not from the weights in {folder}: serve the "
            f"weights (leave --onnx_file out), or export them again with `vit-ft export --model {folder} --output "
            f"EXPORT_DIR` (or `vit-ft push --model {folder} --repo_id REPO --with_onnx`)."
        )


def test_every_onnx_file_records_the_weights_it_was_exported_from(model_dir, export_dir):
    digest = weights_digest(model_dir)
    assert len(digest) == 64
    for file in ("model.onnx", "model_quantized.onnx"):
        metadata = {item.key: item.value for item in onnx.load(str(export_dir / "onnx" / file)).metadata_props}
        assert metadata[WEIGHTS_DIGEST_KEY] == digest


def test_an_onnx_file_that_records_no_weights_is_not_served_beside_weights(model_dir, export_dir, tmp_path):
    folder = _copy(model_dir, tmp_path / "digits")
    (folder / "onnx").mkdir()
    model = onnx.load(str(export_dir / "onnx" / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(folder / "onnx" / "model.onnx"))
    with pytest.raises(ValueError, match=r"model.onnx was exported from weights it does not record, not from"):
        load_predictor(str(folder), onnx_file="model.onnx")


def test_removing_a_run_removes_its_onnx_folder(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path / "digits")
    add_onnx_models(folder)
    (folder / "notes.txt").write_text("not the run's")
    remove_run(folder)
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]


TINY_RECIPE = (
    "preset: vit_tiny_patch16_224\nmodel_overrides: {image_size: 8, patch_size: 2, hidden_size: 16, "
    "num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32}\ndataset_name: digits\n"
    "max_train_samples: 64\nmax_eval_samples: 64\nper_device_train_batch_size: 16\nlogging_steps: 2\n"
    "eval_strategy: 'no'\nsave_strategy: steps\nsave_steps: 2\nhorizontal_flip: false\nreport_to: none\n"
    "use_cpu: true\ndisable_tqdm: true\noutput_dir: run\n"
)


@pytest.mark.slow
def test_a_resumed_or_overwritten_run_removes_the_stale_onnx_folder_and_evaluate_scores_the_new_model(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    assert vit_ft_cli("train", recipe, "--max_steps", "2", cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    resumed = ["--max_steps", "4", "--resume_from_checkpoint", "latest"]
    for flags in (resumed, ["--max_steps", "2", "--learning_rate", "0.1", "--overwrite_output_dir", "true"]):
        add_onnx_models(run)  # as `vit-ft push --with_onnx`
        result = vit_ft_cli("train", recipe, *flags, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert not (run / "onnx").exists()
        if flags == resumed:
            assert (
                f"Removed {Path('run') / 'onnx'}: its ONNX files were exported from the weights this run replaces"
                in result.stderr
            )
        evaluated = vit_ft_cli(
            "evaluate",
            "--model",
            run,
            "--dataset_name",
            "digits",
            "--max_eval_samples",
            "64",
            "--output",
            tmp_path / "eval.json",
            "--overwrite",
            cwd=tmp_path,
        )
        assert evaluated.returncode == 0, evaluated.stderr
        scored = json.loads((tmp_path / "eval.json").read_text())["clean"]["accuracy"]
        assert scored == json.loads((run / "all_results.json").read_text())["test_accuracy"]


# Defects 2 and 3: an export into an earlier export, or into a model's folder.


@pytest.mark.slow
def test_an_export_into_an_earlier_export_is_refused_and_overwrite_replaces_it_whole(
    export_dir, three_class_model, tmp_path, image_file
):
    target = _copy(export_dir, tmp_path / "digits_onnx")
    before = files(target)
    result = vit_ft_cli("export", "--model", three_class_model, "--output", target, cwd=tmp_path)
    assert_one_line(
        result,
        f"vit-ft export: --output {target} already holds an export (config.json, onnx, "
        "preprocessor_config.json, vit_ft_recipe.yaml): pass --overwrite to replace it as a "
        "whole, or give another folder.",
    )
    assert files(target) == before

    (target / "eval_test.json").write_text("{}")  # an evaluation of the old export goes with it
    result = vit_ft_cli("export", "--model", three_class_model, "--output", target, "--overwrite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(files(target)) == [
        "config.json",
        "onnx/model.onnx",
        "preprocessor_config.json",
        "vit_ft_recipe.yaml",
    ]
    assert _leftovers(tmp_path) == []
    predicted = vit_ft_cli("predict", "--model", target, "--top_k", "5", image_file, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert {item["label"] for item in json.loads(predicted.stdout)["predictions"]} == {"a", "b", "c"}


def test_an_export_into_a_models_folder_is_refused_with_or_without_overwrite(model_dir, three_class_model, tmp_path):
    target = _copy(model_dir, tmp_path / "digits")
    before = files(target)
    message = (
        f"--output {target} holds a model or a training run (config.json, configuration_vit_ft.py, "
        "model.safetensors, modeling_vit_ft.py, ...): `vit-ft export` never writes into a model's or another "
        "folder's files; give a new or empty folder."
    )
    result = vit_ft_cli("export", "--model", three_class_model, "--output", target, "--overwrite", cwd=tmp_path)
    assert_one_line(result, f"vit-ft export: {message}")
    with pytest.raises(FileExistsError) as error:
        export_onnx(str(three_class_model), str(target))
    assert str(error.value) == message
    assert files(target) == before


@pytest.mark.parametrize(
    "contents",
    [
        {"notes.txt": "mine"},
        {"onnx/model.onnx": "", "model.safetensors": ""},
        {"config.json": "{}"},
        {"onnx/model.onnx": "", "config.json": "{}", "notes.txt": "mine"},
    ],
    ids=["other_files", "weights_beside_onnx", "config_without_onnx", "export_and_other_files"],
)
def test_an_export_into_a_folder_that_is_not_an_export_is_refused(model_dir, tmp_path, contents):
    target = tmp_path / "target"
    for name, text in contents.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    before = files(target)
    with pytest.raises(FileExistsError, match=r"never writes into a model's or another folder's files"):
        export_onnx(str(model_dir), str(target), overwrite=True)
    assert files(target) == before and _leftovers(tmp_path) == []


def test_an_export_into_an_empty_folder_is_written(model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    export_onnx(str(model_dir), str(tmp_path / "empty"))
    assert sorted(files(tmp_path / "empty")) == [
        "config.json",
        "onnx/model.onnx",
        "preprocessor_config.json",
        "vit_ft_recipe.yaml",
    ]
    assert (tmp_path / "empty" / "vit_ft_recipe.yaml").read_text() == RECIPE_TEXT


# Defect 4: a failed export leaves the folder it writes as it was.


def test_a_damaged_preprocessor_leaves_the_earlier_export_as_it_was(export_dir, model_dir, tmp_path):
    source = _copy(model_dir, tmp_path / "model")
    (source / "preprocessor_config.json").write_text('{"size": {"height": 3')
    target = _copy(export_dir, tmp_path / "digits_onnx")
    before = files(target)
    result = vit_ft_cli(
        "export", "--model", source, "--output", target, "--overwrite", "--quantize", "int8", cwd=tmp_path
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{source / 'preprocessor_config.json'} is truncated" in result.stderr.strip().splitlines()[-1]
    assert files(target) == before and _leftovers(tmp_path) == []


@pytest.mark.parametrize("stage", ["quantize_int8", "_check_parity", "OnnxClassifier"])
def test_a_failure_at_any_stage_leaves_the_earlier_export_as_it_was(
    stage, export_dir, three_class_model, tmp_path, monkeypatch
):
    target = _copy(export_dir, tmp_path / "digits_onnx")
    before = files(target)

    def fail(*args, **kwargs):
        raise OSError(f"{stage} failed")

    monkeypatch.setattr(f"vit_ft.export.onnx_export.{stage}", fail)
    with pytest.raises(OSError, match=f"{stage} failed"):
        export_onnx(str(three_class_model), str(target), quantize="int8", overwrite=True)
    assert files(target) == before and _leftovers(tmp_path) == []
    with pytest.raises(OSError, match=f"{stage} failed"):
        export_onnx(str(three_class_model), str(tmp_path / "new"), quantize="int8")
    assert not (tmp_path / "new").exists() and _leftovers(tmp_path) == []


# Defect 8: --onnx_file outside the export, and an ONNX file whose logits are not the labels.


def test_onnx_file_must_be_a_file_of_the_exports_onnx_folder(export_dir, tmp_path, image_file):
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(export_dir / "onnx" / "model.onnx", outside)
    onnx_folder = export_dir / "onnx"
    holds = (
        f"({onnx_folder} holds model.onnx, model_quantized.onnx): give one of those, or export the model with "
        f"`vit-ft export --model MODEL --output {export_dir}` (--quantize int8 adds int8)."
    )
    result = vit_ft_cli("predict", "--model", export_dir, "--onnx_file", outside, image_file, cwd=tmp_path)
    assert_one_line(result, f"vit-ft predict: --onnx_file {outside}: {outside} is not a file of {onnx_folder} {holds}")
    escaping = f"{onnx_folder}/../../{outside.parent.name}/{outside.name}"
    with pytest.raises(FileNotFoundError, match="is not a file of"):
        load_predictor(str(export_dir), onnx_file=escaping)
    with pytest.raises(FileNotFoundError) as error:
        load_predictor(str(export_dir), onnx_file="model_int4.onnx")
    assert str(error.value) == f"--onnx_file model_int4.onnx: {onnx_folder / 'model_int4.onnx'} does not exist {holds}"
    # A path to a file of onnx/ is the file itself.
    assert load_predictor(str(export_dir), onnx_file=str(onnx_folder / "model_quantized.onnx")).id2label == DIGITS


def test_an_onnx_file_with_another_label_count_than_its_config_is_refused(
    export_dir, three_class_model, tmp_path, image_file
):
    target = _copy(export_dir, tmp_path / "digits_onnx")
    shutil.copy(three_class_model / "config.json", target / "config.json")  # 3 labels, 10 logits
    result = vit_ft_cli("predict", "--model", target, "--onnx_file", "model_quantized.onnx", image_file, cwd=tmp_path)
    assert_one_line(
        result,
        f"vit-ft predict: {target / 'onnx' / 'model_quantized.onnx'} gives 10 logits per image "
        "but its config.json has 3 labels: export the model and its config together with `vit-ft "
        "export`.",
    )
    with pytest.raises(ValueError) as error:
        load_predictor(str(target))  # as `vit-ft evaluate` loads it
    assert str(error.value) == (
        f"{target / 'onnx' / 'model.onnx'} gives 10 logits per image but its config.json has "
        "3 labels: export the model and its config together with `vit-ft export`."
    )


class _SymbolicWidthSession:
    """An ONNX Runtime session's view of a file whose logits width is a symbolic dimension."""

    def __init__(self, session):
        self.session = session

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        (output,) = self.session.get_outputs()
        return [SimpleNamespace(name=output.name, shape=["batch", "labels"])]

    def run(self, names, feeds):
        self.feeds = feeds
        return self.session.run(names, feeds)


def test_a_symbolic_output_width_is_checked_on_one_image(export_dir):
    session = _SymbolicWidthSession(OnnxClassifier(export_dir).session)
    _check_output_width(session, 10, (32, 32), export_dir / "onnx" / "model.onnx")
    assert session.feeds["pixel_values"].shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"model.onnx gives 10 logits per image but its config.json has 3 labels"):
        _check_output_width(session, 3, (32, 32), export_dir / "onnx" / "model.onnx")


# An export's config.json and preprocessor_config.json, damaged.


@pytest.mark.parametrize(
    ("id2label", "problem"),
    [
        (None, 'has no id2label, not the labels by index ("0": name, ...)'),
        (["0", "1"], 'has id2label as a list, not the labels by index ("0": name, ...)'),
        ({"1": "a", "2": "b"}, "has id2label keys 1, 2, not the indices 0 to 1"),
    ],
    ids=["missing", "list", "keys"],
)
def test_an_exports_config_without_usable_labels_is_one_line(export_dir, tmp_path, image_file, id2label, problem):
    target = _copy(export_dir, tmp_path / "digits_onnx")
    config = json.loads((target / "config.json").read_text())
    config.pop("id2label")
    if id2label is not None:
        config["id2label"] = id2label
    (target / "config.json").write_text(json.dumps(config))
    result = vit_ft_cli("predict", "--model", target, image_file, cwd=tmp_path)
    assert_one_line(
        result, f"vit-ft predict: {target / 'config.json'} {problem}: export the model again with `vit-ft export`."
    )


def test_an_exports_truncated_preprocessor_config_is_named(export_dir, tmp_path, image_file):
    target = _copy(export_dir, tmp_path / "digits_onnx")
    path = target / "preprocessor_config.json"
    path.write_bytes(path.read_bytes()[:40])
    result = vit_ft_cli("predict", "--model", target, image_file, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"vit-ft predict: {path} is truncated: its JSON stops")
    path.write_text("")
    with pytest.raises(ValueError, match=rf"{path} is empty \(0 bytes\), not JSON"):
        load_predictor(str(target))


# --opset outside what torch's exporter writes: refused before any work.


@pytest.mark.parametrize("opset", [7, 16, 26, 99])
def test_an_opset_torch_cannot_write_is_refused_before_anything_is_created(model_dir, tmp_path, opset):
    with pytest.raises(ValueError) as error:
        export_onnx(str(model_dir), str(tmp_path / "export"), opset=opset)
    assert str(error.value) == (
        f"--opset {opset}: torch's exporter cannot write this model in opset {opset}: choose "
        "an opset from 17 to 25, e.g. 23."
    )
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_opset_26_in_one_line(model_dir, tmp_path):
    result = vit_ft_cli("export", "--model", model_dir, "--output", tmp_path / "export", "--opset", "26", cwd=tmp_path)
    assert_one_line(
        result,
        "vit-ft export: --opset 26: torch's exporter cannot write this model in opset 26: choose "
        "an opset from 17 to 25, e.g. 23.",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("opset", [17, 25])
def test_the_ends_of_the_opset_range_export_and_serve(model_dir, tmp_path, opset, image_file):
    exported = export_onnx(str(model_dir), str(tmp_path / "export"), opset=opset)
    assert onnx.load(str(exported / "onnx" / "model.onnx")).opset_import[0].version == opset
    from_export = predict_images(str(exported), [str(image_file)], top_k=3)[0]["predictions"]
    from_model = predict_images(str(model_dir), [str(image_file)], top_k=3)[0]["predictions"]
    assert [p["label"] for p in from_export] == [p["label"] for p in from_model]
