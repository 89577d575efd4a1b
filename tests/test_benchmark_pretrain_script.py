import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vit_ft import ViTConfig, ViTForImageClassification, ViTForMaskedAutoencoding

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_pretrain.py"


@pytest.mark.slow
def test_benchmark_pretrain_reports_both_ratios_with_the_control(tmp_path):
    # The numbers themselves are not asserted (tests never assert timings): what the script reports and measures is.
    output = tmp_path / "result.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--device",
        "cpu",
        "--preset",
        "vit_tiny_patch16_224",
        "--decoder-hidden-size",
        "64",
        "--decoder-num-hidden-layers",
        "1",
        "--decoder-num-attention-heads",
        "4",
        "--decoder-intermediate-size",
        "128",
        "--batch-size",
        "2",
        "--rounds",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=SCRIPT.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(output.read_text())
    models = ["vit_ft", "transformers", "transformers_control", "fine_tuning"]
    assert list(result["result"]["step_s"]) == models
    assert all(len(times) == 2 and min(times) > 0 for times in result["result"]["step_s"].values())
    ratios = result["result"]["ratios"]
    assert list(ratios) == ["vit_ft/transformers", "transformers/transformers_control", "pretraining/fine_tuning"]
    assert all(len(ratio["rounds"]) == 2 and ratio["min"] <= ratio["max"] for ratio in ratios.values())
    # Same weights: transformers has one tensor more (the decoder's fixed positions), vit_ft trains its encoder's.
    parameters = result["parameters"]
    assert parameters["transformers"] == parameters["transformers_control"]
    decoder_positions = (1 + 14 * 14) * 64
    assert parameters["transformers"]["total"] - parameters["vit_ft"]["total"] == decoder_positions
    assert "transformers/transformers_control: " in completed.stdout
    assert "pretraining/fine_tuning: " in completed.stdout


def test_forward_flops_count_what_torchs_flop_counter_counts():
    # The FLOP ratio the script prints beside the speed ratio: the architecture's matrix products, against torch's own
    # count of one forward of each model.
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(SCRIPT.parent))
    from benchmark_pretrain import NUM_LABELS, forward_flops_per_image

    config = ViTConfig(
        image_size=32,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        decoder_hidden_size=16,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=24,
        num_labels=NUM_LABELS,
    )
    # Explicit matrix products (the counter does not see CPU sdpa's kernel), set before construction: the decoder's
    # blocks copy the config then.
    config._attn_implementation = "eager"
    pixels = torch.randn(1, 3, 32, 32)
    counted = {}
    for name, model, inputs in [
        ("pretraining", ViTForMaskedAutoencoding(config), {"noise": torch.rand(1, 64)}),
        ("fine_tuning", ViTForImageClassification(config), {}),
    ]:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.eval()(pixel_values=pixels, **inputs)
        counted[name] = counter.get_total_flops()
    assert forward_flops_per_image(config) == pytest.approx(counted, rel=1e-6)
