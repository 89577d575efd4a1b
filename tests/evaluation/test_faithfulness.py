"""The deletion curve against patches removed by hand, and `vit-ft explain --faithfulness` on a data set."""

import json

import pytest
import torch

from vit_ft import ViTForImageClassification
from vit_ft.checkpoints.loading import default_processor
from vit_ft.cli import main
from vit_ft.evaluation.attention_maps import METHODS
from vit_ft.evaluation.faithfulness import area_under_curve, deletion_curve, deletion_order

from ..conftest import tiny_config


def _model(**overrides) -> ViTForImageClassification:
    torch.manual_seed(0)
    return ViTForImageClassification(tiny_config(initializer_range=0.3, **overrides)).eval()


def test_deletion_order_ranks_the_highest_first_and_breaks_ties_at_random():
    maps = torch.tensor([[[0.2, 0.9], [0.5, 0.1]], [[0.0, 0.0], [0.0, 0.0]]])  # (2, 2, 2)
    order = deletion_order(maps, torch.Generator().manual_seed(0))
    assert order[0].tolist() == [1, 2, 0, 3]
    assert sorted(order[1].tolist()) == [0, 1, 2, 3]
    # An all-zero map (no evidence anywhere) is not read row by row: over seeds, every patch comes first sometimes.
    firsts = {deletion_order(maps, torch.Generator().manual_seed(seed))[1, 0].item() for seed in range(20)}
    assert firsts == {0, 1, 2, 3}


def test_deletion_curve_equals_patches_removed_by_hand():
    model = _model()
    pixel_values = torch.randn(2, 3, 32, 32)  # 8x8 patches of 4 pixels
    order = torch.stack([torch.randperm(64, generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)])
    curve = deletion_curve(model, pixel_values, order)
    assert curve.shape == (2, 33)  # at most 32 steps after the intact image: 2 patches each here
    with torch.no_grad():
        probabilities = model(pixel_values).logits.softmax(-1)
        predicted = probabilities.argmax(-1)
        torch.testing.assert_close(curve[:, 0], probabilities.max(-1).values)
        for step, removed in ((5, 10), (32, 64)):
            images = pixel_values.clone()
            for image, patches in enumerate(order[:, :removed].tolist()):
                mean = pixel_values[image].mean(dim=(1, 2))  # the image's mean colour, per channel
                for patch in patches:
                    row, column = divmod(patch, 8)
                    images[image, :, row * 4 : row * 4 + 4, column * 4 : column * 4 + 4] = mean[:, None, None]
            expected = model(images).logits.softmax(-1).gather(1, predicted[:, None])[:, 0]
            torch.testing.assert_close(curve[:, step], expected)
    assert torch.allclose(deletion_curve(model, pixel_values, order, steps=64)[:, ::2], curve)
    with pytest.raises(ValueError, match=r"^order of shape \(2, 60\): expected one rank per patch of each image, "):
        deletion_curve(model, pixel_values, order[:, :60])


def test_area_under_curve_is_the_trapezoid_over_the_share_removed():
    curves = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0], [0.8, 0.2, 0.2]])
    torch.testing.assert_close(area_under_curve(curves), torch.tensor([0.5, 1.0, 0.35]))


@pytest.fixture
def digits_model(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(
        image_size=8, patch_size=2, num_labels=10, id2label={i: str(i) for i in range(10)}, initializer_range=0.5
    )
    ViTForImageClassification(config).save_pretrained(tmp_path / "model")
    default_processor(8).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_explain_faithfulness_writes_each_methods_deletion_curve(digits_model, capsys):
    command = [
        "explain",
        "--model",
        str(digits_model),
        "--faithfulness",
        "--dataset_name",
        "digits",
        "--max_eval_samples",
        "12",
        "--batch_size",
        "5",
    ]
    main(command)
    written = digits_model / "faithfulness_test.json"
    results = json.loads(written.read_text())
    assert json.loads(capsys.readouterr().out) == results
    assert {key: results[key] for key in ("split", "examples", "skipped_images", "steps", "seed")} == {
        "split": "test",
        "examples": 12,
        "skipped_images": 0,
        "steps": 16,
        "seed": 0,
    }
    assert list(results["deletion_auc"]) == ["random", *METHODS]
    curves = results["deletion_curve"]
    for name, auc in results["deletion_auc"].items():
        assert len(curves[name]) == 17 and 0 < auc < 1
        # Every curve starts from the same intact images' predicted probability.
        assert curves[name][0] == pytest.approx(curves["random"][0])
    with pytest.raises(SystemExit, match="earlier vit-ft explain --faithfulness: pass --overwrite"):
        main(command)
    main([*command, "--overwrite", "--method", "attnlrp,rollout"])
    assert list(json.loads(written.read_text())["deletion_auc"]) == ["random", "attnlrp", "rollout"]
    with pytest.raises(SystemExit, match="not a result of vit-ft explain --faithfulness"):
        main([*command, "--output", str(digits_model / "config.json"), "--overwrite"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--faithfulness", "--dataset_name", "digits", "a.png"],
            "vit-ft explain: --faithfulness scores a data set, not image files (a.png, ...): name it with "
            "--dataset_name or --train_dir/--test_dir, as for vit-ft evaluate.",
        ),
        (
            ["--faithfulness", "--dataset_name", "digits", "--method", "rollout,saliency"],
            "vit-ft explain: Unknown attention-map method 'saliency': choose among rollout, gradient_rollout, "
            "last_layer, attnlrp, transformer_attribution.",
        ),
        (
            ["--output", "maps"],
            "vit-ft explain: give image files and --output FOLDER for their heat maps, or --faithfulness and a data "
            "set for deletion curves.",
        ),
    ],
)
def test_explain_faithfulness_errors_in_one_line(digits_model, arguments, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--model", str(digits_model), *arguments])
    assert str(exit_info.value.code) == message
    assert not (digits_model / "faithfulness_test.json").exists()
