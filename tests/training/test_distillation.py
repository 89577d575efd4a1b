"""Distillation: the losses against hand computations, the teacher, depth-pruned students, training runs."""

import json
import logging
import math
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from transformers import AutoModelForImageClassification, ViTImageProcessor

from tests.checkpoints.test_labels import IMAGENET, IMAGENET_DATA
from tests.test_multiprocess import launch
from tests.training.test_lora import DIGITS, digits_model, lora_flags
from vit_ft import load_model
from vit_ft.checkpoints.loading import default_processor
from vit_ft.model.modeling_vit_ft import ViTImageClassifierOutput
from vit_ft.recipe import read_recipe
from vit_ft.train import build_trainer, run_training
from vit_ft.training.arguments import DistillationArguments
from vit_ft.training.distillation import (
    Teacher,
    depth_pruned_student,
    distillation_loss,
    hard_distillation_loss,
    load_teacher_model,
    soft_distillation_loss,
)

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "full_finetune" / "digits.yaml"
STUDENT = (
    '{"image_size": 16, "patch_size": 4, "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, '
    '"intermediate_size": 48}'
)
# The teacher sees 32-pixel images normalised with ImageNet's statistics; the student 16 pixels with mean = std = 0.5.
TEACHER_MEAN, TEACHER_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("teacher")
    digits_model(image_size=32, num_hidden_layers=3).save_pretrained(path)
    processor = ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=TEACHER_MEAN, image_std=TEACHER_STD)
    processor.save_pretrained(path)
    return path


def distil_flags(teacher: Path, output_dir: Path, *flags: str) -> list[str]:
    return [
        "--teacher_model_name_or_path",
        str(teacher),
        "--model_overrides",
        STUDENT,
        "--output_dir",
        str(output_dir),
        "--max_train_samples",
        "96",
        "--max_eval_samples",
        "40",
        "--per_device_train_batch_size",
        "16",
        "--warmup_steps",
        "0",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        "--logging_steps",
        "1",
        *flags,
    ]


def test_soft_loss_is_temperature_squared_kl_of_the_softened_distributions():
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    temperature = 2.0
    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        s_exp, t_exp = [math.exp(v / temperature) for v in s_row], [math.exp(v / temperature) for v in t_row]
        p_s, p_t = [v / sum(s_exp) for v in s_exp], [v / sum(t_exp) for v in t_exp]
        expected += sum(t * math.log(t / s) for s, t in zip(p_s, p_t))
    expected = expected / 2 * temperature**2
    assert soft_distillation_loss(student, teacher, temperature).item() == pytest.approx(expected, rel=1e-6)
    assert soft_distillation_loss(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_hard_loss_is_cross_entropy_on_the_teachers_top_class():
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[2.0, 0.0, 1.0], [1.0, 5.0, 1.0]])
    # The teacher's top classes are 0 and 1.
    expected = (
        -(
            math.log(math.exp(1) / (math.exp(1) + math.exp(2) + math.exp(0.5)))
            + math.log(math.exp(-1) / (1 + math.exp(-1) + math.exp(3)))
        )
        / 2
    )
    assert hard_distillation_loss(student, teacher).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("with_token", [False, True])
def test_the_loss_mixes_labels_and_teacher_by_alpha_and_a_token_student_splits_the_heads(with_token):
    cls, dist = torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([[0.0, 3.0, 1.0]])
    teacher, labels = torch.tensor([[0.0, 0.0, 4.0]]), torch.tensor([0])
    if with_token:
        outputs = ViTImageClassifierOutput(logits=(cls + dist) / 2, cls_logits=cls, distillation_logits=dist)
        label_logits, student_logits = cls, dist
    else:
        outputs = ViTImageClassifierOutput(logits=cls)
        label_logits = student_logits = cls
    terms = distillation_loss(outputs, labels, teacher, "hard", alpha=0.3, temperature=1.0)
    label_loss = torch.nn.functional.cross_entropy(label_logits, labels)
    teacher_loss = torch.nn.functional.cross_entropy(student_logits, torch.tensor([2]))
    torch.testing.assert_close(terms["label_loss"], label_loss)
    torch.testing.assert_close(terms["distillation_loss"], teacher_loss)
    torch.testing.assert_close(terms["loss"], 0.7 * label_loss + 0.3 * teacher_loss)
    # Soft targets (MixUp, CutMix) for the labels' term.
    soft = distillation_loss(outputs, torch.tensor([[0.5, 0.5, 0.0]]), teacher, "soft", 0.5, 2.0)
    expected = -(torch.log_softmax(label_logits, -1) * torch.tensor([[0.5, 0.5, 0.0]])).sum()
    torch.testing.assert_close(soft["label_loss"], expected)


def test_the_teacher_sees_the_images_at_its_own_size_and_normalisation(teacher_dir):
    torch.manual_seed(0)
    model = digits_model(image_size=32, num_hidden_layers=3)
    teacher_processor = ViTImageProcessor.from_pretrained(teacher_dir)
    teacher = Teacher(model, teacher_processor, default_processor(16))
    pixels = torch.rand(2, 3, 16, 16)  # images in [0, 1]
    student_input = (pixels - 0.5) / 0.5
    resized = torch.nn.functional.interpolate(pixels, size=(32, 32), mode="bicubic", antialias=True)
    expected = model(
        pixel_values=(resized - torch.tensor(TEACHER_MEAN).view(1, 3, 1, 1))
        / torch.tensor(TEACHER_STD).view(1, 3, 1, 1)
    ).logits
    torch.testing.assert_close(teacher.train()(student_input), expected, rtol=1e-5, atol=1e-5)
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.parameters())
    # Seeing the images as the student does, the teacher takes the student's inputs as they are.
    same = Teacher(model, default_processor(32), default_processor(32))
    pixels = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(same(pixels), model(pixel_values=pixels).logits, rtol=0, atol=0)
    model = digits_model(image_size=32, num_hidden_layers=3)
    half = Teacher(model, teacher_processor, default_processor(16), "bfloat16")
    assert half(student_input).dtype == torch.float32 and next(half.model.parameters()).dtype == torch.bfloat16


def test_a_depth_pruned_student_starts_as_a_copy_of_the_chosen_teacher_layers():
    teacher = digits_model(num_hidden_layers=3, use_distillation_token=True)
    student = depth_pruned_student(teacher, "0,2", {"drop_path_rate": 0.1})
    assert student.config.num_hidden_layers == 2 and student.config.drop_path_rate == 0.1
    teacher_weights, student_weights = teacher.state_dict(), student.state_dict()
    for name, tensor in student_weights.items():
        source = name.replace("vit.layers.1.", "vit.layers.2.")
        assert torch.equal(tensor, teacher_weights[source]), name
    assert student.distillation_classifier is not None
    with pytest.raises(ValueError, match="increasing order, each from 0 to 2"):
        depth_pruned_student(teacher, "2,0")
    with pytest.raises(ValueError, match="change the architecture"):
        depth_pruned_student(teacher, "0", {"hidden_size": 64})


@pytest.mark.slow
@pytest.mark.parametrize("distillation_type", ["soft", "hard"])
def test_training_leaves_the_teacher_untouched_and_logs_both_loss_terms(teacher_dir, tmp_path, distillation_type):
    flags = distil_flags(
        teacher_dir,
        tmp_path,
        "--max_steps",
        "3",
        "--distillation_type",
        distillation_type,
        "--mixup_alpha",
        "0.8",
        "--cutmix_alpha",
        "1.0",
        "--gradient_accumulation_steps",
        "2",
        "--distillation_temperature",
        "2.0",
    )
    trainer, _, _ = build_trainer(read_recipe(RECIPE, flags))
    before = {name: tensor.clone() for name, tensor in trainer.teacher.state_dict().items()}
    student_before = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
    trainer.train()
    assert all(torch.equal(before[name], tensor) for name, tensor in trainer.teacher.state_dict().items())
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in trainer.teacher.parameters())
    assert not trainer.teacher.training
    changed = [not torch.equal(student_before[name], tensor) for name, tensor in trainer.model.state_dict().items()]
    assert all(changed)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
    for entry in logged:
        assert entry["label_loss"] > 0 and entry["distillation_loss"] >= 0
    # The Trainer's loss is alpha-mixed from the two terms (alpha 0.5).
    entry = logged[-1]
    assert entry["loss"] == pytest.approx(0.5 * entry["label_loss"] + 0.5 * entry["distillation_loss"], rel=1e-3)


@pytest.mark.slow
def test_a_token_student_learns_from_both_and_evaluates_with_the_average_of_its_heads(teacher_dir, tmp_path):
    student = json.loads(STUDENT) | {"use_distillation_token": True}
    flags = distil_flags(
        teacher_dir,
        tmp_path,
        "--max_steps",
        "2",
        "--distillation_type",
        "hard",
        "--model_overrides",
        json.dumps(student),
    )
    trainer, data, _ = build_trainer(read_recipe(RECIPE, flags))
    trainer.train()
    prediction = trainer.predict(data["test"])
    batch = trainer.data_collator([data["test"][i] for i in range(len(data["test"]))])
    with torch.no_grad():
        outputs = trainer.model.eval()(pixel_values=batch["pixel_values"])
    assert not torch.allclose(outputs.cls_logits, outputs.distillation_logits)
    average = (outputs.cls_logits + outputs.distillation_logits) / 2
    torch.testing.assert_close(torch.from_numpy(prediction.predictions), average, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_a_student_cut_from_the_teacher_trains_and_saves_as_an_ordinary_model(teacher_dir, tmp_path):
    flags = distil_flags(
        teacher_dir,
        tmp_path,
        "--max_steps",
        "2",
        "--model_overrides",
        "None",
        "--preset",
        "None",
        "--student_from_teacher",
        "true",
        "--student_layers",
        "1",
    )
    results = run_training(read_recipe(RECIPE, flags))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "vit_ft" and config["num_hidden_layers"] == 1 and config["image_size"] == 32
    student = AutoModelForImageClassification.from_pretrained(tmp_path)
    teacher = AutoModelForImageClassification.from_pretrained(teacher_dir)
    assert results["train_total_parameters"] == sum(p.numel() for p in student.parameters())
    assert results["train_total_parameters"] < sum(p.numel() for p in teacher.parameters())


def test_a_teacher_with_other_labels_is_refused_with_the_differences(tmp_path):
    path = tmp_path / "teacher"
    labels = ["zero", *DIGITS[1:]]
    digits_model(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}).save_pretrained(path)
    with pytest.raises(ValueError, match=r"teacher .*class 0 is 'zero' for the teacher, '0' in the data"):
        build_trainer(read_recipe(RECIPE, distil_flags(path, tmp_path / "out")))


def _deit_teacher(path: Path, labels: list[str]) -> Path:
    """A transformers DeiT with a distillation token, as facebook/deit-*-distilled checkpoints are saved."""
    config = transformers.DeiTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, image_size=16, patch_size=4
    )
    config.id2label = dict(enumerate(labels))  # repeated names, as in ImageNet's classic list
    transformers.DeiTForImageClassificationWithTeacher(config).save_pretrained(path)
    size = {"height": 16, "width": 16}
    transformers.DeiTImageProcessor(size=size, crop_size=size).save_pretrained(path)
    return path


def test_an_imagenet_teacher_with_the_classic_repeated_crane_teaches_on_data_that_renamed_it(tmp_path, caplog):
    teacher = str(_deit_teacher(tmp_path / "deit", IMAGENET))
    with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoints.labels"):
        model, _ = load_teacher_model(teacher, IMAGENET_DATA)
    assert model.config.num_labels == 1000
    assert [record.message for record in caplog.records if record.name == "vit_ft.checkpoints.labels"] == [
        f"The labels of teacher {teacher} are matched to the dataset's by position (teacher_label_matching=auto): 1 "
        "of 1000 names differ, each a name the teacher repeats that the dataset made unique (class 517: 'crane' for "
        "the teacher, 'crane2' in the data)."
    ]
    with pytest.raises(ValueError, match=r"class 517 is 'crane' for the teacher, 'crane2' in the data\. Distil"):
        load_teacher_model(teacher, IMAGENET_DATA, label_matching="name")


@pytest.mark.slow
def test_distillation_runs_with_a_teacher_whose_repeated_name_the_image_folders_made_unique(tmp_path, caplog):
    # The folders sort as the teacher's classes, and name its second `crane` `crane2`, as a dataset must.
    teacher = _deit_teacher(tmp_path / "deit", ["bird", "crane", "crane", "dog", "egg", "fox"])
    for index, label in enumerate(["bird", "crane", "crane2", "dog", "egg", "fox"]):
        (tmp_path / "images" / label).mkdir(parents=True)
        for image in range(3):
            Image.new("RGB", (16, 16), (40 * index, 20 * image, 0)).save(tmp_path / "images" / label / f"{image}.png")
    data = ["--dataset_name", "None", "--train_dir", str(tmp_path / "images"), "--train_val_split", "0"]
    flags = distil_flags(teacher, tmp_path / "out", *data, "--max_steps", "2", "--distillation_type", "hard")
    with caplog.at_level(logging.WARNING, logger="vit_ft.checkpoints.labels"):
        results = run_training(read_recipe(RECIPE, flags))
    assert results["train_loss"] > 0
    assert "1 of 6 names differ, each a name the teacher repeats that the dataset made unique" in caplog.text
    with pytest.raises(ValueError, match=r"class 2 is 'crane' for the teacher, 'crane2' in the data"):
        build_trainer(read_recipe(RECIPE, [*flags, "--teacher_label_matching", "name", "--output_dir", "unused"]))


def test_teacher_label_matching_is_checked_with_its_group():
    with pytest.raises(ValueError, match=r"^teacher_label_matching='names': choose auto"):
        DistillationArguments(teacher_model_name_or_path="org/teacher", teacher_label_matching="names")
    with pytest.raises(ValueError, match=r"^teacher_label_matching=index needs teacher_model_name_or_path: without"):
        DistillationArguments(teacher_label_matching="index")


@pytest.mark.slow
def test_distillation_under_accelerate_launch_with_two_processes(teacher_dir, tmp_path):
    launch(
        tmp_path,
        *distil_flags(
            teacher_dir,
            tmp_path / "out",
            "--max_steps",
            "3",
            "--distillation_type",
            "hard",
            "--max_eval_samples",
            "45",
            "--per_device_eval_batch_size",
            "16",
            "--save_strategy",
            "steps",
            "--save_steps",
            "3",
        ),
    )
    history = json.loads((tmp_path / "out" / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    assert len(logged) == 3 and all(entry["distillation_loss"] > 0 for entry in logged)
    assert (tmp_path / "out" / "model.safetensors").is_file()
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert 0.0 <= results["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_a_lora_adapter_teaches_as_its_merged_model(teacher_dir, tmp_path):
    run_training(read_recipe(RECIPE, lora_flags(teacher_dir, tmp_path / "adapter", "--max_steps", "2")))
    trainer, _, _ = build_trainer(read_recipe(RECIPE, distil_flags(tmp_path / "adapter", tmp_path / "student")))
    merged = load_model(str(tmp_path / "adapter"), merge=True).eval()
    pixels = torch.rand(2, 3, 16, 16)
    resized = torch.nn.functional.interpolate(pixels, size=(32, 32), mode="bicubic", antialias=True)
    normalised = (resized - torch.tensor(TEACHER_MEAN).view(1, 3, 1, 1)) / torch.tensor(TEACHER_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = merged(pixel_values=normalised).logits
    torch.testing.assert_close(trainer.teacher((pixels - 0.5) / 0.5), expected, rtol=1e-5, atol=1e-5)
