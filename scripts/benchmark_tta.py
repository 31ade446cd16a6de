#!/usr/bin/env python3
"""What test-time augmentation buys and costs: mF1 of each ``--tta`` mode on a test split, the
paired bootstrap interval of its gain over ``none``, and CPU and wall seconds per pair.

Every mode runs the same checkpoint through :class:`~baseline_algorithm.inference.BaselineDetector`
and :func:`~baseline_algorithm.predict.detect_all` (the path of ``predict``) at float32 on the CPU,
on the test split of a release-layout dataset (``--data``), or of a synthetic one made first
(``--pairs`` test pairs at ``--size`` px, seed ``--seed``: a seed other than the training data's
0 gives pairs the model has not seen). Scoring uses 3 µm at the data's resolution. The gain's
interval resamples test images, the same resamples for every mode (``evaluation.bootstrap``).

Usage: python scripts/benchmark_tta.py [--data DIR | --pairs 48 --size 256 --seed 7]
       [--checkpoint PATH] [--modes none flips d4] [--replicates 2000] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline_algorithm.data import synthesize_dataset
from baseline_algorithm.detector import LoadedDetector
from baseline_algorithm.inference import SHIPPED_CHECKPOINT, baseline_detector, ground_truth_points
from baseline_algorithm.predict import detect_all
from baseline_algorithm.train import data_resolution, scoring_radius_px
from baseline_algorithm.tta import TTA_MODES
from evaluation import score
from evaluation.bootstrap import STATISTICS, paired_replicates, percentile_interval
from evaluation.release import ReleaseDataset


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_mode(checkpoint: Path, pairs, mode: str, radius_px: float) -> dict:
    """Detect and score the test pairs with one mode; counts per image and seconds per pair."""
    detector = baseline_detector("cpu", checkpoint, precision="float32", tta=mode)
    loaded = LoadedDetector(f"baseline, tta {mode}", detector, 1, "float32")
    cpu, wall = cpu_seconds(), time.perf_counter()
    points = detect_all(loaded, pairs, len(pairs), progress=False, read_ahead_pairs=0)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    truth, count = ground_truth_points(pairs)
    report = score(points, truth, count, radius_px=radius_px)
    return {
        "aggregates": report.aggregates,
        "counts": report.counts,
        "cpu_s_per_pair": cpu / len(pairs),
        "wall_s_per_pair": wall / len(pairs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="release-layout dataset (its test split)")
    parser.add_argument("--pairs", type=int, default=48, help="synthetic test pairs")
    parser.add_argument("--size", type=int, default=256, help="synthetic patch side in px")
    parser.add_argument("--seed", type=int, default=7, help="synthetic data seed")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--modes", nargs="+", default=list(TTA_MODES), choices=list(TTA_MODES))
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if "none" not in args.modes:
        parser.error("--modes must include none, the reference of the gains")
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or synthesize_dataset(
            Path(scratch) / "data",
            (0, 0, args.pairs),
            size=args.size,
            seed=args.seed,
            progress=False,
        )
        pairs = list(ReleaseDataset(data, "test"))
        radius_px = scoring_radius_px(data_resolution(pairs[0])[0])
        results = {mode: run_mode(args.checkpoint, pairs, mode, radius_px) for mode in args.modes}
    replicates = paired_replicates(
        {mode: r["counts"] for mode, r in results.items()}, replicates=args.replicates
    )
    mf1 = STATISTICS.index("mF1")
    rows = {}
    for mode, result in results.items():
        gain = replicates[mode][:, mf1] - replicates["none"][:, mf1]
        low, high = percentile_interval(gain)
        rows[mode] = {
            "mF1": result["aggregates"]["mF1"],
            "gain_over_none": result["aggregates"]["mF1"] - results["none"]["aggregates"]["mF1"],
            "gain_interval_95": [float(low), float(high)],
            "cpu_s_per_pair": result["cpu_s_per_pair"],
            "wall_s_per_pair": result["wall_s_per_pair"],
            "cost_over_none": result["cpu_s_per_pair"] / results["none"]["cpu_s_per_pair"],
        }
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.strip()
    document = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "commit": commit,
        "data": str(args.data)
        if args.data
        else f"synthetic test split, {args.pairs} pairs at {args.size} px, seed {args.seed}",
        "checkpoint": str(args.checkpoint),
        "pairs": len(pairs),
        "replicates": args.replicates,
        "modes": rows,
    }
    print("| tta | mF1 | gain over none (95% CI) | CPU s/pair | wall s/pair | CPU cost x |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode, row in rows.items():
        low, high = row["gain_interval_95"]
        print(
            f"| {mode} | {row['mF1']:.4f} | {row['gain_over_none']:+.4f} ({low:+.4f}, "
            f"{high:+.4f}) | {row['cpu_s_per_pair']:.2f} | {row['wall_s_per_pair']:.2f} | "
            f"{row['cost_over_none']:.2f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
