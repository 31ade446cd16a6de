"""Time and peak memory of whole-slide scoring through the CLI, parsing included.

For each size N, writes a synthetic slide (N ground-truth cells at a density of 1,000,000 cells
per 77,000 x 77,000 px, predictions: 90 % of the cells found with a few pixels of jitter and 10 %
of those with the wrong class, plus 10 % spurious detections) as two "Multiple points" files,
then runs ``python -m evaluation score --whole-slide`` on them in a fresh process and reports its
wall time, CPU time (user + system) and peak resident memory (``ru_maxrss`` of that process).
Wall time depends on what else the machine runs; the 1-minute load average is printed with it.

Usage: python scripts/benchmark_scorer.py [--sizes 10000 100000 1000000] [--seed 0]
                                         [--matching greedy|hungarian]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
#: Reference density: one million cells on a 77,000 px square slide.
CELLS_PER_SQUARE_PX = 1_000_000 / 77_000**2


def synthetic_slide(num_cells: int, seed: int) -> tuple[dict, dict]:
    """Ground-truth and prediction documents of one synthetic slide (image_0)."""
    rng = np.random.default_rng(seed)
    side = int(round(np.sqrt(num_cells / CELLS_PER_SQUARE_PX)))
    gt_xy = rng.integers(0, side, size=(num_cells, 2))
    gt_label = rng.choice([1, 2], size=num_cells, p=[0.65, 0.35])

    found = rng.random(num_cells) < 0.9
    jitter = np.rint(rng.normal(0.0, 4.0, size=(found.sum(), 2))).astype(np.int64)
    found_xy = np.clip(gt_xy[found] + jitter, 0, side - 1)
    found_label = np.where(rng.random(found.sum()) < 0.1, 3 - gt_label[found], gt_label[found])
    spurious = num_cells // 10
    pred_xy = np.concatenate([found_xy, rng.integers(0, side, size=(spurious, 2))])
    pred_label = np.concatenate([found_label, rng.choice([1, 2], size=spurious)])
    pred_probability = np.round(rng.random(len(pred_xy)), 4)
    shuffle = rng.permutation(len(pred_xy))

    def document(xy, label, probability, **extra):
        return {
            "type": "Multiple points",
            "points": [
                {"name": "image_0", "point": [x, y, c], "probability": p}
                for (x, y), c, p in zip(xy.tolist(), label.tolist(), probability.tolist())
            ],
            "version": {"major": 1, "minor": 0},
            **extra,
        }

    ground_truth = document(gt_xy, gt_label, np.ones(num_cells), num_images=1)
    predictions = document(pred_xy[shuffle], pred_label[shuffle], pred_probability[shuffle])
    return ground_truth, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--matching", choices=("greedy", "hungarian"), default="greedy")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{'GT cells':>10} {'predictions':>12} {'side px':>8} {'wall s':>7} {'CPU s':>6} "
        f"{'peak MiB':>9} {'load':>5}  mF1"
    )
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for size in args.sizes:
            ground_truth, predictions = synthetic_slide(size, args.seed)
            side = max(max(entry["point"][:2]) for entry in ground_truth["points"]) + 1
            num_predictions = len(predictions["points"])
            (folder / "gt.json").write_text(json.dumps(ground_truth))
            (folder / "pred.json").write_text(json.dumps(predictions))
            del ground_truth, predictions
            seconds, cpu_seconds, peak_mib = run_cli(
                folder / "pred.json", folder / "gt.json", folder / "metrics.json", args.matching
            )
            metrics = json.loads((folder / "metrics.json").read_text())["aggregates"]
            print(
                f"{size:>10} {num_predictions:>12} {side:>8} {seconds:>7.1f} {cpu_seconds:>6.1f} "
                f"{peak_mib:>9.0f} {os.getloadavg()[0]:>5.1f}  {metrics['mF1']:.4f}",
                flush=True,
            )


def run_cli(
    predictions: Path, ground_truth: Path, output: Path, matching: str = "greedy"
) -> tuple[float, float, float]:
    """Run the CLI in a child process; return its wall seconds, CPU seconds and peak RSS (MiB)."""
    command = [
        sys.executable,
        "-m",
        "evaluation",
        "score",
        "--whole-slide",
        "--predictions",
        str(predictions),
        "--ground-truth",
        str(ground_truth),
        "--output",
        str(output),
        "--matching",
        matching,
    ]
    with tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=stderr
        )
        # wait4 gives the resource usage of this one child, not of all children so far.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(f"scoring failed: {stderr.read().strip().splitlines()[-1]}")
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


if __name__ == "__main__":
    main()
