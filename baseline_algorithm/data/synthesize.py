"""``synthesize``: write a synthetic dataset in the release layout and its test split's GC layouts."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from evaluation import write_json_atomic

from .gc_layout import GrandChallengeWriter
from .pairs import DataError
from .release import SPLITS, write_release_pair
from .synthetic import FULL_SIZE, SyntheticConfig, synthesize_pair

PREDICTION_STREAM = 0xFFFFFFFF  # seed-sequence key of the noisy predictions (never a pair index)
FIELD_MULTIPLE = 4  # the tissue patch splits into 4 x 4 cell fields of view of whole pixels


def synthesize_dataset(
    out: str | os.PathLike,
    pairs: tuple[int, int, int],
    *,
    size: int = FULL_SIZE,
    seed: int = 0,
    gc_compression: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Generate a synthetic OCELOT dataset.

    Writes ``OUT/`` in the release layout (``metadata.json``, ``images/``, ``annotations/``) and,
    when the test split is not empty, ``OUT/gc/`` with the test split's Grand Challenge layouts
    (see :mod:`baseline_algorithm.data.gc_layout`). Pairs are numbered ``001, 002, ...`` across
    train, val and test. The result depends only on ``pairs``, ``size`` and ``seed``.

    Parameters
    ----------
    out : path
        Output directory; built beside it and renamed into place when complete.
    pairs : (train, val, test)
        Number of pairs per split.
    size : int
        Side of both patches in pixels (16..1024); the metadata states the resulting pixel size.
    seed : int
    gc_compression : str or None
        Compression of the stacked TIFFs (None: uncompressed, as the platform; ``"zlib"``).
    overwrite : bool
        Replace an existing non-empty ``out``.
    progress : bool
        Show a tqdm progress bar.
    workers : int
        Processes that render pairs in parallel; the output does not depend on it.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    if not 16 <= size <= FULL_SIZE or size % FIELD_MULTIPLE:
        raise DataError(f"--size {size}: expected a multiple of {FIELD_MULTIPLE} between 16 and {FULL_SIZE}")
    if any(n < 0 for n in pairs):
        raise DataError(f"--pairs {' '.join(map(str, pairs))}: counts must not be negative")
    if workers < 1:
        raise DataError(f"--workers {workers}: expected at least 1")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: directory exists and is not empty (pass --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        _write_dataset(staging, pairs, SyntheticConfig(size=size), seed, gc_compression, progress, workers)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_dataset(
    root: Path, pairs, config: SyntheticConfig, seed: int, gc_compression, progress: bool, workers: int
) -> None:
    width = max(3, len(str(sum(pairs))))
    # (name, index, split, position in split) of every pair, all splits numbered together.
    jobs = []
    for split, count in zip(SPLITS, pairs):
        for position in range(count):
            index = len(jobs)
            jobs.append((f"{index + 1:0{width}d}", index, split, position))
    render = partial(_render_pair, seed=seed, config=config)
    gc_writer = None
    if pairs[2]:
        gc_writer = GrandChallengeWriter(root / "gc", pairs[2], config.size, gc_compression)
    sample_pairs = {}
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        # map() keeps the job order, so the files are the same whatever the number of workers.
        rendered = pool.map(render, jobs, chunksize=4) if pool else map(render, jobs)
        for (name, _, split, position), pair in tqdm(
            zip(jobs, rendered), total=len(jobs), desc="synthesize", unit="pair", disable=not progress
        ):
            write_release_pair(root, split, pair)
            sample_pairs[name] = pair.meta
            if split == "test":
                gc_writer.add(position, pair)
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    if gc_writer is not None:
        gc_writer.finish(np.random.default_rng([seed, PREDICTION_STREAM]), config.cell_mpp)
    write_json_atomic(
        root / "metadata.json",
        {
            "sample_pairs": sample_pairs,
            "synthetic": {"seed": seed, "size": config.size, "pairs": dict(zip(SPLITS, pairs))},
        },
    )


def _render_pair(job, *, seed: int, config: SyntheticConfig):
    name, index, split, _ = job
    return synthesize_pair(name, seed, index, split, config)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``synthesize``."""
    parser = subparsers.add_parser(
        "synthesize",
        help="write a synthetic dataset (release layout + Grand Challenge layouts of the test split)",
        description=synthesize_dataset.__doc__.split("\n\n")[1],
    )
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument(
        "--pairs", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=(8, 2, 2), help="pairs per split"
    )
    parser.add_argument("--size", type=int, default=FULL_SIZE, help="patch side in pixels (default 1024)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gc-compression", choices=("none", "zlib"), default="none", help="compression of the stacked TIFFs"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes rendering pairs in parallel")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    synthesize_dataset(
        args.out,
        tuple(args.pairs),
        size=args.size,
        seed=args.seed,
        gc_compression=None if args.gc_compression == "none" else args.gc_compression,
        overwrite=args.force,
        progress=not args.quiet,
        workers=args.workers,
    )
    print(f"wrote {args.out}")
    return 0
