import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_inference.py"


def _run_smoke(tmp_path, *flags: str) -> tuple[dict, str]:
    """The script's --smoke run on one thread: its JSON result and its printed output."""
    output = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), "--smoke", *flags, "--output", str(output)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(output.read_text()), completed.stdout


@pytest.mark.slow
def test_benchmark_inference_times_every_runtime_against_eager(tmp_path):
    # The numbers themselves are not asserted (tests never assert timings): what the script reports and measures is.
    result, stdout = _run_smoke(tmp_path)
    assert result["threads"] == 1 and "CPU threads (torch and ONNX Runtime): 1" in stdout
    assert [(row["model"], row["batch"]) for row in result["rows"]] == [
        ("vit_tiny_2_layers_32", 1),
        ("vit_tiny_2_layers_32", 2),
    ]
    for row in result["rows"]:
        assert list(row["seconds"]) == ["eager", "compile", "onnx_float32", "onnx_int8", "eager_control"]
        assert all(min(times) > 0 for times in row["seconds"].values())
        assert row["calls"] == dict.fromkeys(row["seconds"], 1)
        assert row["ratio_to_eager"]["eager"] == 1.0
        low, high = row["control_spread"]
        assert 0 < low <= high
    assert "| vit_tiny_2_layers_32 | 2 |" in stdout


@pytest.mark.slow
def test_benchmark_inference_without_compile_leaves_torch_compile_out(tmp_path):
    result, stdout = _run_smoke(tmp_path, "--without_compile")
    for row in result["rows"]:
        assert list(row["seconds"]) == ["eager", "onnx_float32", "onnx_int8", "eager_control"]
    assert "compile img/s" not in stdout and "onnx_int8 img/s" in stdout


@pytest.mark.slow
def test_benchmark_inference_times_each_runtime_for_at_least_min_seconds(tmp_path):
    # --smoke's calls are about 10 ms or less: half a second takes several, counted per runtime.
    result, _ = _run_smoke(tmp_path, "--without_compile", "--min_seconds", "0.5")
    for row in result["rows"]:
        for runtime, times in row["seconds"].items():
            assert row["calls"][runtime] > 1
            assert times[0] * row["calls"][runtime] >= 0.25  # sub-millisecond calls vary by a third or more


@pytest.mark.slow
def test_benchmark_inference_with_plain_export_times_the_export_without_graph_rewrites(tmp_path):
    result, stdout = _run_smoke(tmp_path, "--without_compile", "--with_plain_export")
    for row in result["rows"]:
        assert list(row["seconds"]) == [
            "eager",
            "onnx_float32",
            "onnx_int8",
            "onnx_float32_plain",
            "onnx_int8_plain",
            "eager_control",
        ]
    assert "onnx_int8_plain img/s" in stdout
