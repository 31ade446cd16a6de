"""The benchmarks run end to end on the CPU at toy sizes.

``scripts/benchmark_gpu.sh`` is meant for a GPU machine; here it runs with ``--device cpu``, which
exercises every step (checkpoint, stacked input, the predict entry at each batch size, training
steps, the JSON) except the CUDA calls. ``scripts/benchmark_training.py`` times two precisions;
``scripts/benchmark_model.py`` reports checkpoint sizes and step rates.
``scripts/benchmark_inference.py`` is checked on a small untrained model: both precisions are
timed and bf16 is scored against float32. ``scripts/benchmark_scorer.py --against`` times two
checkouts (here this one twice).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from baseline_algorithm.inference import SHIPPED_CHECKPOINT, DetectionSettings
from baseline_algorithm.model import CellTissueModel, ModelConfig

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_benchmark_runs_on_cpu(tmp_path):
    out = tmp_path / "figures" / "gpu.json"
    completed = subprocess.run(
        [
            str(REPO / "scripts" / "benchmark_gpu.sh"),
            str(out),
            "--device",
            "cpu",
            "--pairs",
            "3",
            "--size",
            "64",
            "--batch-sizes",
            "1",
            "2",
            "--precision",
            "float32",
            "--train-batch",
            "2",
            "--train-steps",
            "1",
            # Forced: auto would pick bfloat16 on a CPU with native bfloat16, float32 elsewhere.
            "--train-precision",
            "float32",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["machine"]["device"] == "cpu"
    assert figures["model"] == {"encoder": "resnet34", "variant": "pred-to-inter-2", "size": 64}
    assert figures["predict"]["pairs"] == 3 and figures["predict"]["precision"] == "float32"
    assert set(figures["predict"]["batches"]) == {"1", "2"}
    for run in figures["predict"]["batches"].values():
        assert run["pairs_per_s"] == pytest.approx(3 / run["seconds"])
    assert figures["training"]["batch"] == 2 and figures["training"]["pairs_per_s"] > 0
    assert figures["training"]["precision"] == "float32"
    # Every predict run went through the real entry: its log names the batch size and precision.
    assert "precision float32 (asked for), batch size 2" in completed.stderr


def test_gpu_benchmark_refuses_a_training_batch_of_one(tmp_path):
    module = load_script("benchmark_gpu")
    with pytest.raises(SystemExit):
        module.main(["--json", str(tmp_path / "x.json"), "--device", "cpu", "--train-batch", "1"])
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_training_benchmark_times_each_precision_on_the_same_batch():
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark_training.py"),
            "--size",
            "64",
            "--batch",
            "2",
            "--steps",
            "1",
            "--variants",
            "cell-only",
            "pred-to-inter-2",
            "--precisions",
            "float32",
            "bfloat16",
            "--loading-pairs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    loading = completed.stdout.splitlines()[-1]
    assert loading.startswith("# data loading: ") and loading.endswith(
        " ms CPU per pair (2 pairs at 64 px, one thread)"
    )
    assert float(loading.split()[3]) > 0
    table = [line for line in completed.stdout.splitlines() if line.startswith("|")]
    assert table[0] == (
        "| variant | float32 pairs/s | bfloat16 pairs/s | bfloat16 / float32 time |"
    )
    assert [row.split("|")[1].strip() for row in table[2:]] == ["cell-only", "pred-to-inter-2"]
    for row in table[2:]:
        float32, bfloat16, ratio = (float(cell) for cell in row.split("|")[2:5])
        # the printed rates are rounded to 0.01: the ratio lies between their extremes
        low, high = (float32 - 0.005) / (bfloat16 + 0.005), (float32 + 0.005) / (bfloat16 - 0.005)
        assert low - 0.005 <= ratio <= high + 0.005


@pytest.mark.slow
def test_model_benchmark_reports_sizes_and_both_rates():
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark_model.py"),
            "--encoders",
            "resnet18",
            "--size",
            "64",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "--precision",
            "float32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("pred-to-inter-2, 64 px, batch 2, float32, cpu")
    table = [line for line in completed.stdout.splitlines() if line.startswith("|")]
    columns = [cell.strip() for cell in table[0].split("|")[1:-1]]
    row = dict(zip(columns, (cell.strip() for cell in table[2].split("|")[1:-1]), strict=True))
    assert row["encoder"] == "resnet18"
    assert float(row["int8 MB"]) < float(row["float16 MB"]) < float(row["float32 MB"])
    assert float(row["train pairs/s"]) > 0 and float(row["inference pairs/s"]) > 0


@pytest.mark.slow
def test_inference_benchmark_times_and_compares_precisions():
    module = load_script("benchmark_inference")
    torch.manual_seed(0)
    config = ModelConfig(encoder="resnet18", patch_size=64, cell_mpp=0.2 * 1024 / 64)
    model = CellTissueModel(config).eval()
    result = module.benchmark(
        model,
        DetectionSettings(),
        pairs=1,
        precisions=["float32", "bfloat16"],
        warmup=0,
        progress=False,
    )
    for precision in ("float32", "bfloat16"):
        assert result[precision]["cpu_s_per_pair"] > 0 and result[precision]["wall_s_per_pair"] > 0
    assert result["cpu_ratio"]["bfloat16"] == pytest.approx(
        result["bfloat16"]["cpu_s_per_pair"] / result["float32"]["cpu_s_per_pair"]
    )
    assert 0 < result["max_abs_probability_difference"] < 0.1
    if result["float32"]["points"]:
        assert 0.0 <= result["agreement_f1"] <= 1.0
    else:
        assert result["agreement_f1"] is None


def test_scorer_benchmark_times_two_checkouts_side_by_side(tmp_path):
    out = tmp_path / "figures.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark_scorer.py"),
            "--sizes",
            "2000",
            "--rounds",
            "1",
            "--against",
            str(REPO),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "this / against: CPU" in completed.stdout
    rows = json.loads(out.read_text())["sizes"]
    assert [row["gt_cells"] for row in rows] == [2000, 2000]
    assert rows[0]["mF1"] == rows[1]["mF1"]
    assert all(row["cpu_s"] > 0 and row["peak_mib"] > 0 for row in rows)


def test_read_ahead_benchmark_runs_both_settings(tmp_path):
    out = tmp_path / "figures.json"
    script = load_script("benchmark_read_ahead")
    assert script.main(["--pairs", "2", "--rounds", "1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["none"]["points"] == figures["one batch"]["points"] > 0
    assert figures["wall_ratio"] > 0 and figures["setup"]["pairs"] == 2


def test_tta_benchmark_scores_each_mode_and_checkpoint_on_shared_resamples(tmp_path):
    out = tmp_path / "tta.json"
    copy = tmp_path / "copy.pt"
    shutil.copyfile(SHIPPED_CHECKPOINT, copy)
    script = load_script("benchmark_tta")
    argv = ["--pairs", "2", "--size", "64", "--modes", "none", "flips", "--replicates", "50"]
    argv += ["--checkpoints", str(SHIPPED_CHECKPOINT), str(copy), "--json", str(out)]
    assert script.main(argv) == 0
    figures = json.loads(out.read_text())
    assert list(figures["checkpoints"]) == ["shipped", str(copy)] and figures["pairs"] == 2
    for entry in figures["checkpoints"].values():
        assert set(entry["modes"]) == {"none", "flips"}
        assert entry["modes"]["none"]["gain_over_none"] == 0
        low, high = entry["modes"]["flips"]["gain_interval_95"]
        assert low <= high
        assert entry["modes"]["flips"]["cpu_s_per_pair"] > 0
    # The same weights on the same resamples: the paired gain is exactly zero on every one.
    same = figures["checkpoints"][str(copy)]
    assert same["gain_over_first"] == 0 and same["gain_over_first_interval_95"] == [0.0, 0.0]
    assert (
        same["modes"]["flips"]["mF1"] == figures["checkpoints"]["shipped"]["modes"]["flips"]["mF1"]
    )
