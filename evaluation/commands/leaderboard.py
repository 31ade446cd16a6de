"""``ocelot leaderboard``: rank a folder of submissions, with rank stability and significance."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
from pathlib import Path

from evaluation.commands.options import add_ground_truth_arguments, bounded_int, input_files
from evaluation.errors import InputError
from evaluation.files import check_output_set
from evaluation.limits import current_limits
from evaluation.metadata import resolve_organs
from evaluation.release import read_ground_truth
from evaluation.text import for_terminal
from evaluation.tissue import read_tissue

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Score every *.json in a folder with the OCELOT 2023 rule and rank the submissions by mF1 "
    "(ties share the best rank: 1, 1, 3). One paired bootstrap of the test images gives each "
    "submission's rank distribution, and every pair's probability and significance (one-sided, "
    "Holm-corrected) of one beating the other. Writes OUT/leaderboard.json, leaderboard.csv and "
    "a self-contained leaderboard.html. Each submission also gets its detection F1 and type "
    "accuracy and, with tissue annotations (--tissue, or a release folder's), its F1 per class "
    "and tissue stratum and a ranking on the rare cell-tissue pairings with its bootstrap rank "
    "interval. Invalid submissions are listed as failed."
)

#: Upper bounds of the options that set the amount of work.
MAX_WORKERS = 64


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value}")
    return value


def _default_workers() -> int:
    """The CPUs this process may use (all of the machine's where the OS cannot say)."""
    available = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    return max(1, min(MAX_WORKERS, available))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the leaderboard's options."""
    parser.add_argument(
        "--submissions-dir",
        required=True,
        type=Path,
        help="folder of submissions: each *.json is one, named by its file stem",
    )
    add_ground_truth_arguments(parser)
    most = current_limits().replicates
    parser.add_argument(
        "--replicates",
        type=bounded_int(2, most),
        default=1000,
        help=f"bootstrap replicates, 2..{most:,} (default 1000; the most is OCELOT_MAX_REPLICATES)",
    )
    parser.add_argument(
        "--seed",
        type=bounded_int(0, 2**63 - 1),
        default=0,
        help="seed of the bootstrap (default 0)",
    )
    parser.add_argument(
        "--alpha",
        type=_level,
        default=0.05,
        help="family-wise error rate of the significance map (default 0.05)",
    )
    parser.add_argument(
        "--workers",
        type=bounded_int(1, MAX_WORKERS),
        default=None,
        help=f"processes scoring in parallel, 1..{MAX_WORKERS} (default: the CPUs available)",
    )
    parser.add_argument(
        "--tissue",
        type=Path,
        help="folder of PNG tissue masks named like the release's cell CSVs, "
        "the k-th for image_k, placed by --metadata: adds the F1 per "
        "tissue stratum and the rare-pairing ranking (default: the "
        "annotations of a release folder given as ground truth)",
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="output folder (created if missing)"
    )


def run(args: argparse.Namespace) -> int:
    """Score, rank, bootstrap, write the three files; print one line per submission."""
    missing = [name for name in ("matplotlib", "tqdm") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(
            f"the leaderboard needs {' and '.join(missing)} (the report extra): "
            "pip install .[report]"
        )
    from tqdm import tqdm

    from evaluation.leaderboard.build import OUTPUT_FILES, build_leaderboard, write_leaderboard
    from evaluation.leaderboard.scoring import find_submissions

    if args.out.resolve() == args.submissions_dir.resolve():
        raise InputError(
            f"{args.out}: is the submissions folder; the next run would rank "
            "leaderboard.json: write the output elsewhere"
        )
    check_output_set(
        args.out, OUTPUT_FILES, inputs=input_files(args.ground_truth, args.split, args.metadata)
    )
    truth = read_ground_truth(args.ground_truth, split=args.split)
    if truth.num_images < 1:
        raise InputError(f"{args.ground_truth}: num_images is 0: no test images to rank on")
    organs, metadata = resolve_organs(
        args.metadata,
        num_images=truth.num_images,
        split=args.split,
        stems=truth.stems,
        search=(args.ground_truth if truth.stems is not None else None,),
    )
    tissue = read_tissue(
        args.ground_truth,
        split=args.split,
        stems=truth.stems,
        folder=args.tissue,
        metadata=metadata,
        num_images=truth.num_images,
    )
    submissions = find_submissions(args.submissions_dir)
    inputs = [*submissions, *input_files(args.ground_truth, args.split, args.metadata)]
    check_output_set(args.out, OUTPUT_FILES, inputs=inputs)
    progress = functools.partial(
        tqdm, desc="scoring", unit="submission", disable=None, total=len(submissions)
    )
    leaderboard = build_leaderboard(
        submissions,
        truth.with_organs(organs),
        replicates=args.replicates,
        seed=args.seed,
        alpha=args.alpha,
        workers=args.workers or _default_workers(),
        progress=progress,
        tissue=tissue,
        settings={
            "submissions_dir": str(args.submissions_dir),
            "ground_truth": str(args.ground_truth),
            "split": args.split,
            "metadata": None if args.metadata is None else str(args.metadata),
            "tissue": None if args.tissue is None else str(args.tissue),
        },
        ground_truth_path=None if args.ground_truth.is_dir() else args.ground_truth,
    )
    paths = write_leaderboard(leaderboard, args.out, inputs=inputs)
    # Names and errors quote file names: escaped, so that none can forge a line or drive the
    # terminal.
    for entry in leaderboard.document["entries"]:
        name = for_terminal(entry["name"])
        if entry["status"] == "scored":
            low, high = entry["rank_interval"]
            rare = (
                ""
                if "rare_rank" not in entry
                else f"  rare pairings {entry['rare_mF1']:.5g} (rank {entry['rare_rank']}, "
                f"interval {entry['rare_rank_interval'][0]}-{entry['rare_rank_interval'][1]})"
            )
            print(
                f"{entry['rank']:>4}  {name}  mF1 {entry['mF1']:.5g}  "
                f"rank interval {low}-{high}  detection F1 {entry['detection_F1']:.4f}  "
                f"type accuracy {entry['accuracy']:.4f}{rare}"
            )
        else:
            print(f"failed  {name}: {for_terminal(entry['error'])}", file=sys.stderr)
    tau = leaderboard.document["kendall_tau"]
    print(
        f"Kendall's tau {'n/a' if tau is None else f'{tau:.3f}'}; wrote "
        + ", ".join(for_terminal(str(path)) for path in paths)
    )
    return 0
