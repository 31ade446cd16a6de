"""scripts/benchmark_slides.py runs end to end at toy sizes with a detector that costs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DETECTOR = "tests.slide_detectors:tile_centres"


def run_script(tmp_path: Path, *arguments: str) -> dict:
    out = tmp_path / "result.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark_slides.py"),
            *arguments,
            "--detector",
            DETECTOR,
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return json.loads(out.read_text())


def test_accuracy_compares_slide_and_patches(tmp_path):
    result = run_script(
        tmp_path, "accuracy", "--slides", "1", "--size", "2048", "--margin", "512", "--pairs", "1"
    )
    (run,) = result["runs"]
    # 3 x 3 tiles over the 2048 px ROI; the last column's and row's centres lie beyond the ROI.
    assert run["tiles"] == 9 and run["cells"] == 4
    assert 0 <= result["slide_mF1"] <= 1 and 0 <= result["patch_mF1"] <= 1
    assert result["pairs_mF1"] is not None and result["overhead_tile_loop"] >= 1


def test_memory_runs_each_size_in_its_own_process(tmp_path):
    result = run_script(tmp_path, "memory", "--sides", "2048", "4096", "--tissue", "1024")
    assert [row["side_px"] for row in result["rows"]] == [2048, 4096]
    assert all(row["peak_MiB"] > 10 and row["tiles"] >= 1 for row in result["rows"])
