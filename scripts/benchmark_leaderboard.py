"""Time of the leaderboard command on an OCELOT-size test set, parsing and page included.

Writes a synthetic ground truth (130 images of 1024 x 1024 px, about 25,000 cells in all, 60 %
background and 40 % tumour cells) and S submissions of about 25,000 points each: submission k
finds a share of the cells that grows with k (so the ranking has clear and close pairs), with a
few pixels of jitter, a wrong class for some of them, and spurious detections. Then it runs
``python -m evaluation leaderboard`` on them in a fresh process and reports its wall time, CPU
time (user + system, its worker processes included) and peak resident memory of the main
process. Wall time depends on what else the machine runs; the 1-minute load average is printed.

Usage: python scripts/benchmark_leaderboard.py [--submissions 100] [--images 130]
                                              [--cells 25000] [--replicates 1000] [--workers N]
                                              [--keep DIR]

``--keep DIR`` writes the test set and the leaderboard into DIR (which must not exist) and leaves
them there, e.g. to look at the page.
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
#: The largest pixel coordinate of a cell patch.
PATCH_MAX_PX = 1023


def _document(image, xy, label, probability, **extra) -> str:
    entries = [
        {"name": f"image_{k}", "point": [x, y, c], "probability": p}
        for k, (x, y), c, p in zip(
            image.tolist(), xy.tolist(), label.tolist(), probability.tolist(), strict=True
        )
    ]
    return json.dumps(
        {"type": "Multiple points", "points": entries, "version": {"major": 1, "minor": 0}, **extra}
    )


def write_test_set(folder: Path, submissions: int, images: int, cells: int, seed: int) -> Path:
    """Write ``gt.json`` and ``submissions/NNN.json``; return the ground-truth path."""
    rng = np.random.default_rng(seed)
    gt_image = np.sort(rng.integers(0, images, cells))
    gt_xy = rng.integers(0, PATCH_MAX_PX + 1, size=(cells, 2))
    gt_label = rng.choice([1, 2], size=cells, p=[0.6, 0.4])
    ground_truth = folder / "gt.json"
    ground_truth.write_text(_document(gt_image, gt_xy, gt_label, np.ones(cells), num_images=images))
    (folder / "submissions").mkdir()
    for k in range(submissions):
        skill = 0.6 + 0.35 * k / max(1, submissions - 1)
        found = rng.random(cells) < skill
        jitter = np.rint(rng.normal(0.0, 3.0, size=(found.sum(), 2))).astype(np.int64)
        found_xy = np.clip(gt_xy[found] + jitter, 0, PATCH_MAX_PX)
        found_label = np.where(rng.random(found.sum()) < 0.12, 3 - gt_label[found], gt_label[found])
        spurious = cells - int(found.sum())
        image = np.concatenate([gt_image[found], rng.integers(0, images, spurious)])
        xy = np.concatenate([found_xy, rng.integers(0, PATCH_MAX_PX + 1, size=(spurious, 2))])
        label = np.concatenate([found_label, rng.choice([1, 2], size=spurious)])
        probability = np.round(rng.random(len(xy)), 4)
        (folder / "submissions" / f"{k:03d}.json").write_text(
            _document(image, xy, label, probability)
        )
    return ground_truth


def run_leaderboard(
    folder: Path, ground_truth: Path, replicates: int, workers: int | None
) -> tuple[float, float, float]:
    """Run the command in a child process; return its wall seconds, CPU seconds, peak RSS (MiB)."""
    command = [
        sys.executable,
        "-m",
        "evaluation",
        "leaderboard",
        "--submissions-dir",
        str(folder / "submissions"),
        "--ground-truth",
        str(ground_truth),
        "--replicates",
        str(replicates),
        "--out",
        str(folder / "out"),
    ]
    if workers is not None:
        command += ["--workers", str(workers)]
    with tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPOSITORY, stdout=subprocess.DEVNULL, stderr=stderr
        )
        # wait4 gives this child's resource usage, including the workers it waited for.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(f"leaderboard failed: {stderr.read().strip().splitlines()[-1]}")
    # ru_maxrss is in KiB on Linux (the largest process, here the main one).
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--images", type=int, default=130)
    parser.add_argument("--cells", type=int, default=25_000)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="passed to the command (default: its own, the CPUs available)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write everything into this new folder")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep: {args.keep} exists")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) if args.keep is None else args.keep
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        ground_truth = write_test_set(folder, args.submissions, args.images, args.cells, args.seed)
        print(
            f"wrote {args.submissions} submissions of ~{args.cells} points on {args.images} "
            f"images in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        seconds, cpu_seconds, peak_mib = run_leaderboard(
            folder, ground_truth, args.replicates, args.workers
        )
        document = json.loads((folder / "out" / "leaderboard.json").read_text())
        page_mib = (folder / "out" / "leaderboard.html").stat().st_size / 2**20
    scored = [entry for entry in document["entries"] if entry["status"] == "scored"]
    print(
        f"leaderboard: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU, peak {peak_mib:.0f} MiB, "
        f"load {os.getloadavg()[0]:.1f}; {len(scored)} ranked, {args.replicates} replicates, "
        f"Kendall's tau {document['kendall_tau']:.3f}, page {page_mib:.1f} MiB"
    )


if __name__ == "__main__":
    main()
