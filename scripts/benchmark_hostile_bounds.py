"""Peak memory of the leaderboard and the bootstrap at the bounds that hold them.

Each case runs ``python -m evaluation ...`` in a fresh process with one worker and prints its
exit status, wall time and peak resident memory (``ru_maxrss`` of that process):

``submissions``
    The bound on submissions: ``--submissions`` one-point files (default 1,000, the default
    ``OCELOT_MAX_SUBMISSIONS``, which is raised to match a larger count) ranked on a ground
    truth of 130 images, 1,000 replicates.
``hostile``
    The issue's folder: a link to the ground truth, a ``$...$`` name, an over-long image name
    and 2,000 one-point files; refused in one line by the bound on submissions.
``images``
    The bounds on images and replicates: a ground truth of 100,000 images (one cell each), three
    submissions, ``--replicates 5000``: the bootstrap draws a 5,000 x 100,000 matrix in blocks.

Usage: python scripts/benchmark_hostile_bounds.py [--cases submissions hostile images]
                                                  [--submissions 1000]
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

REPOSITORY = Path(__file__).resolve().parents[1]

#: Runs the command line given after it, then prints its own peak resident memory in KiB.
_MEASURED = """
import resource, sys
from evaluation.cli import main
status = main(sys.argv[1:])
print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(status)
"""


def _one_point(name: str = "image_0") -> str:
    return json.dumps({"points": [{"name": name, "point": [32, 32, 1], "probability": 0.5}]})


def _ground_truth(path: Path, num_images: int) -> Path:
    points = [
        {"name": f"image_{k}", "point": [32, 32, 1 + k % 2], "probability": 1.0}
        for k in range(num_images)
    ]
    path.write_text(json.dumps({"points": points, "num_images": num_images}))
    return path


def _run(name: str, argv: list[str], environ: dict | None = None) -> dict:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, *argv],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), **(environ or {})},
    )
    wall = time.perf_counter() - start
    lines = result.stderr.strip().splitlines()
    peak = next(int(line.split()[1]) for line in lines if line.startswith("peak_kib"))
    last = next((line for line in reversed(lines) if not line.startswith("peak_kib")), "")
    return {
        "case": name,
        "status": result.returncode,
        "wall_s": round(wall, 1),
        "peak_mib": round(peak / 1024),
        "traceback": "Traceback" in result.stderr,
        "last_line": last[:160],
    }


def submissions_case(folder: Path, count: int) -> dict:
    gt = _ground_truth(folder / "gt.json", 130)
    submissions = folder / "submissions"
    submissions.mkdir()
    for k in range(count):
        (submissions / f"p{k:04d}.json").write_text(_one_point(f"image_{k % 130}"))
    return _run(
        f"submissions ({count})",
        [
            "leaderboard",
            "--submissions-dir",
            str(submissions),
            "--ground-truth",
            str(gt),
            "--out",
            str(folder / "out"),
            "--workers",
            "1",
        ],
        {"OCELOT_MAX_SUBMISSIONS": str(max(count, 1000))},
    )


def hostile_case(folder: Path) -> dict:
    gt = _ground_truth(folder / "gt.json", 130)
    submissions = folder / "submissions"
    submissions.mkdir()
    (submissions / "gt.json").symlink_to(gt)
    (submissions / "$\\undefinedcommand$.json").write_text(_one_point())
    (submissions / "long.json").write_text(_one_point("image_" + "1" * 4301))
    for k in range(2000):
        (submissions / f"p{k:04d}.json").write_text(_one_point())
    return _run(
        "hostile folder (2,003 files)",
        [
            "leaderboard",
            "--submissions-dir",
            str(submissions),
            "--ground-truth",
            str(gt),
            "--out",
            str(folder / "out"),
            "--workers",
            "1",
        ],
    )


def images_case(folder: Path) -> dict:
    gt = _ground_truth(folder / "gt.json", 100_000)
    submissions = folder / "submissions"
    submissions.mkdir()
    for k in range(3):
        (submissions / f"s{k}.json").write_text(_one_point(f"image_{k}"))
    return _run(
        "100,000 images, 5,000 replicates",
        [
            "leaderboard",
            "--submissions-dir",
            str(submissions),
            "--ground-truth",
            str(gt),
            "--out",
            str(folder / "out"),
            "--workers",
            "1",
            "--replicates",
            "5000",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=("submissions", "hostile", "images"),
        default=["submissions", "hostile", "images"],
    )
    parser.add_argument("--submissions", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    for case in args.cases:
        with tempfile.TemporaryDirectory() as folder:
            if case == "submissions":
                result = submissions_case(Path(folder), args.submissions)
            elif case == "hostile":
                result = hostile_case(Path(folder))
            else:
                result = images_case(Path(folder))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
