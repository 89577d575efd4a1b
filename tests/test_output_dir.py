"""The output directory: its file names, the record a card is written from, the claim a run takes, atomic writes."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import peft.utils
import pytest
import torch
import transformers.trainer
from PIL import Image
from transformers import EvalPrediction
from transformers.trainer_pt_utils import save_metrics
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from tests.conftest import tiny_config
from tests.hub.test_hub import TINY_OVERRIDES, TRAIN
from tests.test_train_run import QUICK, RECIPE
from vit_ft import ViTForImageClassification, output_dir
from vit_ft.data.arguments import DataArguments
from vit_ft.evaluation.evaluate import evaluate_model
from vit_ft.evaluation.metrics import ClassificationMetrics
from vit_ft.hub.card import build_model_card
from vit_ft.output_dir import SplitMetrics, TrainingFacts, claim_output_dir, save_results, write_json
from vit_ft.recipe import read_recipe
from vit_ft.train import run_training


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_the_names_of_model_and_adapter_files_are_those_transformers_and_peft_write(tmp_path):
    assert output_dir.ADAPTER_CONFIG == peft.utils.CONFIG_NAME
    assert output_dir.ADAPTER_WEIGHTS == peft.utils.SAFETENSORS_WEIGHTS_NAME
    assert output_dir.TRAINING_ARGS == transformers.trainer.TRAINING_ARGS_NAME
    assert output_dir.CHECKPOINT_PREFIX == PREFIX_CHECKPOINT_DIR
    ViTForImageClassification(tiny_config()).save_pretrained(tmp_path)
    names = {path.name for path in tmp_path.iterdir()}
    assert {output_dir.MODEL_CONFIG, output_dir.MODEL_WEIGHTS} <= names
    assert {name for name in names if name.endswith(".py")} == set(output_dir.REMOTE_CODE)


def test_the_metrics_code_writes_the_keys_the_record_reads():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(12, 7)).astype(np.float32), rng.integers(0, 7, 12)
    computed = ClassificationMetrics(7)(EvalPrediction(predictions=logits, label_ids=labels))
    scores = SplitMetrics.from_metrics({f"test_{key}": value for key, value in computed.items()}, "test")
    # Every score ClassificationMetrics computes is read back: none is dropped by a renamed key.
    assert scores.as_metrics() == computed and scores.k == 5
    assert None not in (scores.accuracy, scores.top_k_accuracy, scores.f1)
    every = SplitMetrics(accuracy=0.5, top_k_accuracy=0.75, k=3, f1=0.25, loss=1.5, skipped_images=2)
    assert SplitMetrics.from_metrics({**every.as_metrics("eval"), "eval_runtime": 1.0}, "eval") == every
    facts = TrainingFacts(
        runtime=65.0,
        epochs=3.0,
        processes=2,
        hardware="CPU",
        trainable_parameters=10,
        total_parameters=20,
        skipped_images=1,
    )
    assert TrainingFacts.from_results(facts.as_results()) == facts


class _Trainer:
    """What `Trainer.save_metrics` uses of a Trainer."""

    def __init__(self, output_dir: Path):
        self.args = SimpleNamespace(output_dir=str(output_dir))

    def is_world_process_zero(self) -> bool:
        return True


def test_results_are_saved_as_the_trainer_saves_them(tmp_path):
    (tmp_path / "trainer").mkdir()
    for split, metrics in (("train", {"train_loss": 0.5, "epoch": 1.0}), ("eval", {"eval_accuracy": 0.75})):
        save_metrics(_Trainer(tmp_path / "trainer"), split, metrics)  # transformers' own
        save_results(tmp_path / "ours", split, metrics)
    for name in ("all_results.json", "train_results.json", "eval_results.json"):
        ours, theirs = (tmp_path / "ours" / name).read_text(), (tmp_path / "trainer" / name).read_text()
        assert ours.rstrip("\n") == theirs


def test_an_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch):
    path = write_json(tmp_path / "all_results.json", {"test_accuracy": 0.1})
    replaced = []

    def killed_before_the_rename(source, target):
        replaced.append((Path(source), Path(target)))
        raise KeyboardInterrupt  # as a run stopped between writing the new file and putting it in place

    monkeypatch.setattr(os, "replace", killed_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"test_accuracy": 0.9})
    assert json.loads(path.read_text()) == {"test_accuracy": 0.1}
    # The new file was whole, beside the old one (os.replace is atomic within a file system), and is cleaned up.
    ((source, target),) = replaced
    assert source.parent == target.parent == tmp_path and target == path
    assert {p.name for p in tmp_path.iterdir()} == {"all_results.json"}
    monkeypatch.undo()
    write_json(path, {"test_accuracy": 0.9})
    assert json.loads(path.read_text()) == {"test_accuracy": 0.9}
    assert {p.name for p in tmp_path.iterdir()} == {"all_results.json"}


# Reads that name a damaged file


def test_read_json_names_an_empty_truncated_or_invalid_file(tmp_path):
    path = tmp_path / "trainer_state.json"
    assert output_dir.read_json(path) is None  # no file
    for content, problem in (
        (b"", "is empty (0 bytes), not JSON"),
        (
            b'{"log_history": [{"loss": 0.5}, {"lo',
            "is truncated: its JSON stops unfinished after 36 bytes (Unterminated string starting at)",
        ),
        (
            b'{"step": 4,\n "epoch": 1,,\n}',
            "is not valid JSON: Expecting property name enclosed in double quotes at line 2 column 13",
        ),
    ):
        path.write_bytes(content)
        with pytest.raises(output_dir.DamagedFileError) as error:
            output_dir.read_json(path, advice="Resume from another checkpoint.")
        assert str(error.value) == f"{path} {problem}. Resume from another checkpoint."
        assert isinstance(error.value, ValueError)


def test_safetensors_problem_reads_the_header_and_the_size(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(4, 4), "bias": torch.zeros(4)}, path)
    whole = path.read_bytes()
    assert output_dir.safetensors_problem(path) is None
    header = 8 + int.from_bytes(whole[:8], "little")
    for content, problem in (
        (whole[:-1], f"is truncated: {len(whole) - 1} bytes of the {len(whole)} its header announces"),
        (whole[:20], f"is truncated: 20 bytes, fewer than its {header - 8}-byte header"),
        (whole + b"\0", f"is damaged: {len(whole) + 1} bytes, 1 more than its header announces"),
        (b"", "is empty (0 bytes)"),
        (b'{"weight": [0, 0]}', "is not a safetensors file (it does not start with a safetensors header)"),
    ):
        path.write_bytes(content)
        assert output_dir.safetensors_problem(path) == problem


def _previous_run(folder: Path) -> None:
    """The files a run leaves, for claims that never read them."""
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / "model.safetensors").write_bytes(b"weights")
    (folder / "all_results.json").write_text('{"test_accuracy": 0.9}')
    (folder / "vit_ft_recipe.yaml").write_text("dataset_name: digits\n")
    (folder / "confusion_matrix.png").write_bytes(b"png")
    (folder / "README.md").write_text("card")


def test_a_folder_without_a_run_is_claimed_and_its_other_files_kept(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "README.md").write_text("a folder's own readme")  # no run: a README.md alone is not a card
    (tmp_path / "checkpoint-notes").mkdir()
    with claim_output_dir(tmp_path, overwrite=True):
        pass
    with claim_output_dir(tmp_path / "new" / "run"):
        assert (tmp_path / "new" / "run").is_dir()
    assert {"notes.txt", "README.md", "checkpoint-notes"} <= {p.name for p in tmp_path.iterdir()}


def test_a_folder_with_a_run_is_refused_unless_overwritten_or_resumed(tmp_path):
    folder = tmp_path / "digits"
    _previous_run(folder)
    (folder / "notes.txt").write_text("mine")
    before = _contents(folder)
    message = (
        f"output_dir {folder} already holds a run (all_results.json, checkpoint-4, confusion_matrix.png, "
        "vit_ft_recipe.yaml): pass --overwrite_output_dir true"
    )
    with pytest.raises(FileExistsError, match=re.escape(message)):
        with claim_output_dir(folder):
            pytest.fail("a refused claim runs nothing")
    with claim_output_dir(folder, resume_from_checkpoint=str(folder / "checkpoint-4")):
        pass
    # Processes other than the one that saves do not check: they would see its fresh files as another run's.
    with claim_output_dir(folder, saves=False):
        pass
    assert {name: data for name, data in _contents(folder).items() if name != output_dir.LOCK} == before
    with pytest.raises(ValueError, match="overwrite_output_dir with resume_from_checkpoint"):
        with claim_output_dir(folder, overwrite=True, resume_from_checkpoint=str(folder / "checkpoint-4")):
            pass
    with claim_output_dir(folder, overwrite=True):
        assert {p.name for p in folder.iterdir()} == {"notes.txt", output_dir.LOCK}


_HOLD = """
import sys
from vit_ft.output_dir import claim_output_dir

with claim_output_dir(sys.argv[1], overwrite=True):
    print("claimed", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def live_run(tmp_path):
    """A folder of a run, claimed by another process until the test ends: a run that has not ended."""
    folder = tmp_path / "live"
    _previous_run(folder)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLD), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout.readline() == "claimed\n"
        _previous_run(folder)  # the live run's files: its own claim removed those it found
        yield folder
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0


def test_a_run_into_a_folder_a_live_run_uses_stops_at_once(live_run, monkeypatch):
    before = _contents(live_run)
    monkeypatch.setattr("vit_ft.train.load_image_datasets", pytest.fail)
    # With --overwrite_output_dir true too: the live run's files are never removed.
    for flags in ([], ["--overwrite_output_dir", "true"]):
        with pytest.raises(OSError, match=re.escape(f"output_dir {live_run} is in use by a run that has not ended")):
            run_training(read_recipe(RECIPE, [*TRAIN, "--output_dir", str(live_run), *flags]))
    assert _contents(live_run) == before


def test_the_claim_is_released_when_the_run_ends_by_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        with claim_output_dir(tmp_path):
            raise RuntimeError("training failed")
    assert not output_dir.run_files(tmp_path)
    with claim_output_dir(tmp_path):
        pass


@pytest.fixture(scope="module")
def ten_class_run(tmp_path_factory) -> Path:
    """A tiny run on the 10 digits, tested (test accuracy, confusion matrix) and scored under a corruption."""
    folder = tmp_path_factory.mktemp("previous") / "run"
    run_training(read_recipe(RECIPE, [*TRAIN, "--output_dir", str(folder)]))
    evaluate_model(str(folder), DataArguments(dataset_name="digits", max_eval_samples=20), "test", ["jpeg"])
    return folder


def _two_class_flags(tmp_path: Path, folder: Path) -> list[str]:
    """A run on image folders of 2 classes, with a validation split and no test split."""
    for label, color in (("cat", (200, 40, 40)), ("dog", (40, 40, 200))):
        (tmp_path / "images" / label).mkdir(parents=True, exist_ok=True)
        for index in range(8):
            Image.new("RGB", (20, 20), tuple(value - 10 * index for value in color)).save(
                tmp_path / "images" / label / f"{index}.png"
            )
    return [
        *QUICK,
        "--dataset_name",
        "None",
        "--train_dir",
        str(tmp_path / "images"),
        "--train_val_split",
        "0.25",
        "--model_overrides",
        TINY_OVERRIDES,
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "6",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--output_dir",
        str(folder),
    ]


@pytest.mark.slow
def test_a_run_into_a_previous_runs_folder_is_refused_before_any_data_is_loaded(ten_class_run, tmp_path, monkeypatch):
    folder = Path(shutil.copytree(ten_class_run, tmp_path / "run"))
    before = _contents(folder)
    monkeypatch.setattr("vit_ft.train.load_image_datasets", pytest.fail)
    with pytest.raises(
        FileExistsError,
        match=rf"output_dir {re.escape(str(folder))} already holds a run \(.*\): "
        r"pass --overwrite_output_dir true to remove it first, choose another "
        r"output_dir, or pass --resume_from_checkpoint",
    ):
        run_training(read_recipe(RECIPE, _two_class_flags(tmp_path, folder)))
    assert _contents(folder) == before


@pytest.mark.slow
def test_overwriting_a_ten_class_run_with_a_two_class_one_leaves_no_stale_result_on_the_card(ten_class_run, tmp_path):
    # The bug: a 2-class run into the folder of a 10-class run published the old test accuracy and confusion matrix.
    folder = Path(shutil.copytree(ten_class_run, tmp_path / "run"))
    (folder / "notes.txt").write_text("not the run's")
    old = json.loads((folder / "all_results.json").read_text())
    assert "test_accuracy" in old and (folder / "confusion_matrix.png").is_file()
    assert (folder / "robustness_test.json").is_file() and (folder / "checkpoint-4").is_dir()
    results = run_training(
        read_recipe(RECIPE, [*_two_class_flags(tmp_path, folder), "--overwrite_output_dir", "true"])
    )

    files = {path.name for path in folder.iterdir()}
    assert not files & {
        "test_results.json",
        "confusion_matrix.png",
        "robustness_test.json",
        "checkpoint-2",
        "checkpoint-4",
    }
    assert "notes.txt" in files
    all_results = json.loads((folder / "all_results.json").read_text())
    assert not any(key.startswith("test_") for key in all_results)
    assert all_results["eval_accuracy"] == results["eval_accuracy"]
    card = build_model_card(folder, "tester/two-classes")
    assert {result.dataset_split for result in card.data.eval_results} == {"validation"}
    assert "| test |" not in card.text and "confusion_matrix.png" not in card.text
    assert "Robustness" not in card.text and "2 classes: cat, dog." in card.text
    assert f"| validation | {results['eval_accuracy']:.4f} |" in card.text


def test_the_trainers_checkpoint_file_names_are_the_trainers_own():
    from transformers import trainer

    from vit_ft import output_dir

    assert output_dir.TRAINER_STATE == trainer.TRAINER_STATE_NAME
    assert output_dir.OPTIMIZER_STATES == (trainer.OPTIMIZER_NAME, trainer.OPTIMIZER_NAME_BIN)
    assert output_dir.SCHEDULER_STATE == trainer.SCHEDULER_NAME
