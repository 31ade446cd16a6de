#!/usr/bin/env python3
"""What test-time augmentation buys and costs, per checkpoint: mF1 of each ``--tta`` mode on a test
split, the paired bootstrap interval of its gain over ``none``, and CPU and wall seconds per pair;
with several checkpoints, also each one's gain over the first (all at ``none``).

Every mode runs each checkpoint through :class:`~baseline_algorithm.inference.BaselineDetector`
and :func:`~baseline_algorithm.predict.detect_all` (the path of ``predict``) at float32 on the CPU,
on the test split of a release-layout dataset (``--data``), or of a synthetic one made first
(``--pairs`` test pairs at ``--size`` px, seed ``--seed``: a seed other than the training data's
0 gives pairs the models have not seen). Scoring uses 3 µm at the data's resolution. Every
interval resamples test images, the same resamples for every checkpoint and mode
(``evaluation.bootstrap``), so the gains are paired.

Usage: python scripts/benchmark_tta.py [--data DIR | --pairs 48 --size 256 --seed 7]
       [--checkpoints PATH [PATH ...]] [--modes none flips d4] [--replicates 2000] [--json OUT]
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


def checkpoint_label(path: Path) -> str:
    """``shipped`` for the shipped checkpoint, else the path as given."""
    return "shipped" if path.resolve() == SHIPPED_CHECKPOINT else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="release-layout dataset (its test split)")
    parser.add_argument("--pairs", type=int, default=48, help="synthetic test pairs")
    parser.add_argument("--size", type=int, default=256, help="synthetic patch side in px")
    parser.add_argument("--seed", type=int, default=7, help="synthetic data seed")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        nargs="+",
        default=[SHIPPED_CHECKPOINT],
        help="checkpoints to measure; the first is the reference of the checkpoint gains",
    )
    parser.add_argument("--modes", nargs="+", default=list(TTA_MODES), choices=list(TTA_MODES))
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if "none" not in args.modes:
        parser.error("--modes must include none, the reference of the gains")
    labels = [checkpoint_label(path) for path in args.checkpoints]
    if len(set(labels)) < len(labels):
        parser.error(f"--checkpoints names a checkpoint twice: {' '.join(labels)}")
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
        results = {
            (label, mode): run_mode(path, pairs, mode, radius_px)
            for label, path in zip(labels, args.checkpoints)
            for mode in args.modes
        }
    replicates = paired_replicates(
        {key: r["counts"] for key, r in results.items()}, replicates=args.replicates
    )
    mf1 = STATISTICS.index("mF1")

    def gain(key, reference) -> tuple[float, list[float]]:
        point = results[key]["aggregates"]["mF1"] - results[reference]["aggregates"]["mF1"]
        low, high = percentile_interval(replicates[key][:, mf1] - replicates[reference][:, mf1])
        return point, [float(low), float(high)]

    checkpoints = {}
    for label, path in zip(labels, args.checkpoints):
        none = results[label, "none"]
        rows = {}
        for mode in args.modes:
            result = results[label, mode]
            point, interval = gain((label, mode), (label, "none"))
            rows[mode] = {
                "mF1": result["aggregates"]["mF1"],
                "gain_over_none": point,
                "gain_interval_95": interval,
                "cpu_s_per_pair": result["cpu_s_per_pair"],
                "wall_s_per_pair": result["wall_s_per_pair"],
                "cost_over_none": result["cpu_s_per_pair"] / none["cpu_s_per_pair"],
            }
        point, interval = gain((label, "none"), (labels[0], "none"))
        checkpoints[label] = {
            "path": str(path),
            "aggregates": none["aggregates"],
            "gain_over_first": point,
            "gain_over_first_interval_95": interval,
            "modes": rows,
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
        "pairs": len(pairs),
        "replicates": args.replicates,
        "checkpoints": checkpoints,
    }
    print(
        "| checkpoint | tta | mF1 | gain over none (95% CI) | CPU s/pair | wall s/pair "
        "| CPU cost x |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, entry in checkpoints.items():
        for mode, row in entry["modes"].items():
            low, high = row["gain_interval_95"]
            print(
                f"| {label} | {mode} | {row['mF1']:.4f} | {row['gain_over_none']:+.4f} "
                f"({low:+.4f}, {high:+.4f}) | {row['cpu_s_per_pair']:.2f} | "
                f"{row['wall_s_per_pair']:.2f} | {row['cost_over_none']:.2f} |"
            )
    if len(labels) > 1:
        print(f"\n| checkpoint (tta none) | mF1 | F1/BC | F1/TC | gain over {labels[0]} (95% CI) |")
        print("|---|---:|---:|---:|---:|")
        for label, entry in checkpoints.items():
            low, high = entry["gain_over_first_interval_95"]
            figures = entry["aggregates"]
            print(
                f"| {label} | {figures['mF1']:.4f} | {figures['F1/BC']:.4f} | "
                f"{figures['F1/TC']:.4f} | {entry['gain_over_first']:+.4f} ({low:+.4f}, "
                f"{high:+.4f}) |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
