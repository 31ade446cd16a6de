#!/usr/bin/env python
"""Wall and CPU time per pair of ``predict``'s detection loop with and without read-ahead.

Writes a Grand Challenge input folder of ``--pairs`` full-size pairs (``test_data/input``'s three
pairs, repeated), builds the detector once (the shipped baseline by default), then runs
:func:`baseline_algorithm.predict.detect_all` over the whole folder ``--rounds`` times with each
read-ahead setting, interleaved round by round so that a change in machine load hits both alike.
Read-ahead 0 reads each pair when the detector asks for it; the default reads the next batch in a
thread while the detector works. Reading and checking the points are included, writing the
output file is not. CPU time counts every thread (``getrusage(RUSAGE_SELF)``).

Usage: python scripts/benchmark_read_ahead.py [--pairs 60] [--rounds 3] [--detector MODULE:FACTORY]
       [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_gpu import write_input  # noqa: E402  (sibling scripts, not a package)
from benchmark_inference import cpu_seconds  # noqa: E402

from baseline_algorithm.detector import BASELINE_DETECTOR, load_detector  # noqa: E402
from baseline_algorithm.predict import detect_all  # noqa: E402
from evaluation.stacked import GcInput  # noqa: E402


def timed_run(detector, folder: Path, read_ahead: int | None) -> dict:
    """One pass over ``folder``: wall and CPU seconds per pair, and the number of points."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    with GcInput(folder) as opened:
        count = len(opened)
        points = detect_all(detector, opened, count, progress=False, read_ahead_pairs=read_ahead)
    return {
        "wall_s_per_pair": (time.perf_counter() - wall) / count,
        "cpu_s_per_pair": (cpu_seconds() - cpu) / count,
        "points": len(points),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--detector", default=BASELINE_DETECTOR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    detector = load_detector(args.detector, device="cpu")
    settings = {"none": 0, "one batch": None}
    runs = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_input(Path(scratch) / "input", args.pairs)
        timed_run(detector, folder, None)  # warm-up: page cache, allocator, first-call costs
        for _ in range(args.rounds):
            for name, read_ahead in settings.items():
                runs[name].append(timed_run(detector, folder, read_ahead))
    figures = {
        name: {
            key: statistics.median(run[key] for run in results)
            for key in ("wall_s_per_pair", "cpu_s_per_pair")
        }
        | {"points": results[0]["points"]}
        for name, results in runs.items()
    }
    figures["wall_ratio"] = (
        figures["one batch"]["wall_s_per_pair"] / figures["none"]["wall_s_per_pair"]
    )
    figures["setup"] = {
        "pairs": args.pairs,
        "rounds": args.rounds,
        "detector": args.detector,
        "batch_size": detector.batch_size,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
    }
    for name in settings:
        print(
            f"read-ahead {name:>9}: {figures[name]['wall_s_per_pair']:.3f} s wall, "
            f"{figures[name]['cpu_s_per_pair']:.3f} s CPU per pair, "
            f"{figures[name]['points']} points"
        )
    print(
        f"wall ratio one batch / none: {figures['wall_ratio']:.2f} "
        f"(medians of {args.rounds} rounds, load {figures['setup']['load']:.1f})"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
