import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_model.py"


@pytest.mark.slow
def test_benchmark_model_reports_every_model_with_the_control_and_isolated_inference(tmp_path):
    # The numbers themselves are not asserted (tests never assert timings): what the script reports and measures is.
    output = tmp_path / "result.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--device",
        "cpu",
        "--models",
        "vit_tiny_patch16_224",
        "--batch-sizes",
        "1",
        "--repeats",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--control",
        "--isolate-inference",
        "--output",
        str(output),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=SCRIPT.parent)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(output.read_text())
    (row,) = result["rows"]
    implementations = ["vit_ft", "transformers", "timm", "timm_control"]
    for phase in ("train", "infer"):
        assert list(row[f"{phase}_step_s"]) == implementations
        # two rounds each: in-process for training, one fresh process per model and round for inference
        assert all(len(times) == 2 and min(times) > 0 for times in row[f"{phase}_step_s"].values())
        assert list(row[f"{phase}_page_faults"]) == implementations
        assert {f"{phase}_vit_ft/timm", f"{phase}_vit_ft/transformers", f"{phase}_timm/timm_control"} <= set(
            row["ratios"]
        )
    assert len(set(result["parameters"].values())) == 1
    assert "| timm/timm_control |" in completed.stdout


def test_flops_per_image_counts_what_torchs_flop_counter_counts():
    # MFU's numerator: the architecture's matrix products, against torch's own count of one forward.
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(SCRIPT.parent))
    from benchmark_common import preset_model
    from benchmark_model import flops_per_image

    name = "vit_tiny_patch16_224"
    model, _ = preset_model(name, num_labels=1000)
    model.set_attn_implementation("eager")  # explicit matrix products: the counter does not see CPU sdpa's kernel
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(pixel_values=torch.randn(1, 3, 224, 224))
    assert flops_per_image(name, training=False) == pytest.approx(counter.get_total_flops(), rel=1e-3)
    assert flops_per_image(name, training=True) == 3 * flops_per_image(name, training=False)
