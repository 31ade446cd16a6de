"""Time and peak memory of whole-slide scoring through the CLI, parsing included.

For each size N, writes a synthetic slide (N ground-truth cells at a density of 1,000,000 cells
per 77,000 x 77,000 px, predictions: 90 % of the cells found with a few pixels of jitter and 10 %
of those with the wrong class, plus 10 % spurious detections) as two "Multiple points" files,
then runs ``python -m evaluation score --whole-slide`` on them ``--rounds`` times, each in a fresh
process, and reports the medians of its wall time, CPU time (user + system) and peak resident
memory.

CPU time and peak memory are those of the scoring process alone, from ``os.wait4``. The files are
written by a separate process and this one never imports numpy: a child started with ``vfork``
(as ``subprocess`` does) counts its parent's peak resident memory in its own ``ru_maxrss``, so
the benchmark keeps its own peak small and prints it (a floor under every child's figure).
Modules are compiled once into a scratch bytecode cache, as an installed package's are
(``PYTHONDONTWRITEBYTECODE`` would make every child compile the scorer again). Wall time depends
on what else the machine runs; the 1-minute load average is printed with it.

With ``--against CHECKOUT`` the scorer of another checkout of this repository (a git worktree of
an older commit, say) runs on the same files, interleaved round by round, and the ratios of the
medians are printed: on a machine whose speed drifts, only side-by-side figures compare.

Usage: python scripts/benchmark_scorer.py [--sizes 10000 100000 1000000] [--rounds 3] [--seed 0]
                                         [--matching greedy|hungarian] [--against CHECKOUT]
                                         [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
#: Reference density: one million cells on a 77,000 px square slide.
CELLS_PER_SQUARE_PX = 1_000_000 / 77_000**2


def write_slide(folder: str, num_cells: int, seed: int) -> None:
    """Write ``gt.json`` and ``pred.json`` of one synthetic slide (image_0) into ``folder``.

    Runs in its own process, so that the benchmark process stays small.
    """
    import numpy as np

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
    Path(folder, "gt.json").write_text(json.dumps(ground_truth))
    del ground_truth
    predictions = document(pred_xy[shuffle], pred_label[shuffle], pred_probability[shuffle])
    Path(folder, "pred.json").write_text(json.dumps(predictions))
    Path(folder, "slide.json").write_text(
        json.dumps({"side_px": side, "gt_cells": num_cells, "predictions": len(pred_xy)})
    )


def in_separate_process(function, *args) -> None:
    """Run ``function(*args)`` in a fresh interpreter (its memory never becomes ours)."""
    process = multiprocessing.get_context("spawn").Process(target=function, args=args)
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"{function.__name__} failed (exit status {process.exitcode})")


def child_environment(bytecode_cache: Path) -> dict:
    """The environment of the measured children: modules compiled once, into ``bytecode_cache``.

    An installed package runs from compiled modules; ``PYTHONDONTWRITEBYTECODE=1`` would make
    every child compile its sources again. The cache lives outside the repository.
    """
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return environment


def run_child(command: list[str], environment: dict | None = None, cwd: Path = REPOSITORY) -> dict:
    """Run ``command`` in a fresh process from ``cwd`` (whose ``evaluation`` package
    ``python -m`` runs); its wall and CPU seconds, peak RSS (MiB) and stdout."""
    with tempfile.TemporaryFile("w+") as stderr, tempfile.TemporaryFile("w+") as stdout:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=stderr, env=environment)
        # wait4 gives the resource usage of this one child, not of all children so far.
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            lines = stderr.read().strip().splitlines() or ["(no output)"]
            raise SystemExit(f"{' '.join(command[:5])} ... failed: {lines[-1]}")
        stdout.seek(0)
        output = stdout.read()
    # ru_maxrss is in KiB on Linux.
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
        "stdout": output,
    }


def own_peak_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3, help="runs per size (medians reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--matching", choices=("greedy", "hungarian"), default="greedy")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="also time the scorer of another checkout of this repository (e.g. "
        "a git worktree of an older commit), interleaved round by round",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be at least 1")
    checkouts = {"this": REPOSITORY}
    if args.against is not None:
        if not (args.against / "evaluation" / "__main__.py").is_file():
            raise SystemExit(f"--against {args.against}: not a checkout of this repository")
        checkouts["against"] = args.against.resolve()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{'checkout':>8} {'GT cells':>10} {'predictions':>12} {'side px':>8} {'wall s':>7} "
        f"{'CPU s':>6} {'peak MiB':>9} {'load':>5}  mF1"
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        environment = child_environment(folder / "bytecode")
        for size in args.sizes:
            in_separate_process(write_slide, scratch, size, args.seed)
            slide = json.loads((folder / "slide.json").read_text())
            command = score_command(folder, args.matching)
            runs = {name: [] for name in checkouts}
            mf1 = {}
            for round_ in range(args.rounds + 1):  # round 0 warms the bytecode and page caches
                for name, checkout in checkouts.items():
                    run = run_child(command, environment, checkout)
                    mf1[name] = json.loads((folder / "metrics.json").read_text())["aggregates"][
                        "mF1"
                    ]
                    if round_:
                        runs[name].append(run)
            for name in checkouts:
                row = {
                    "checkout": str(checkouts[name]),
                    **slide,
                    **{
                        figure: statistics.median(run[figure] for run in runs[name])
                        for figure in ("wall_s", "cpu_s", "peak_mib")
                    },
                    "runs": [
                        {key: value for key, value in run.items() if key != "stdout"}
                        for run in runs[name]
                    ],
                    "load": os.getloadavg()[0],
                    "mF1": mf1[name],
                }
                rows.append(row)
                print(
                    f"{name:>8} {size:>10} {row['predictions']:>12} {row['side_px']:>8} "
                    f"{row['wall_s']:>7.1f} {row['cpu_s']:>6.2f} {row['peak_mib']:>9.0f} "
                    f"{row['load']:>5.1f}  {row['mF1']:.4f}",
                    flush=True,
                )
            if len(checkouts) > 1:
                this, against = rows[-2], rows[-1]
                print(
                    f"{'ratio':>8} {size:>10} this / against: CPU "
                    f"{this['cpu_s'] / against['cpu_s']:.2f}, peak "
                    f"{this['peak_mib'] / against['peak_mib']:.2f}",
                    flush=True,
                )
    print(
        f"medians of {args.rounds} runs per size; benchmark process peak "
        f"{own_peak_mib():.0f} MiB (a floor of every child's peak)"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "matching": args.matching,
                    "rounds": args.rounds,
                    "seed": args.seed,
                    "benchmark_peak_mib": own_peak_mib(),
                    "sizes": rows,
                },
                indent=1,
            )
            + "\n"
        )


def score_command(folder: Path, matching: str = "greedy") -> list[str]:
    """``python -m evaluation score --whole-slide`` on the slide in ``folder``."""
    return [
        sys.executable,
        "-m",
        "evaluation",
        "score",
        "--whole-slide",
        "--predictions",
        str(folder / "pred.json"),
        "--ground-truth",
        str(folder / "gt.json"),
        "--output",
        str(folder / "metrics.json"),
        "--matching",
        matching,
    ]


if __name__ == "__main__":
    main()
