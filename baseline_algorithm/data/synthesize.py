"""A synthetic dataset in the release layout, with its test split's Grand Challenge layouts."""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair
from evaluation.constants import PATCH_SIZE_PX, SPLITS
from evaluation.errors import DataError
from evaluation.files import write_json_atomic
from evaluation.gc_layout import GrandChallengeWriter
from evaluation.release import write_release_pair

__all__ = ["FIELD_MULTIPLE", "PREDICTION_STREAM", "synthesize_dataset"]

PREDICTION_STREAM = 0xFFFFFFFF  # seed-sequence key of the noisy predictions (never a pair index)
FIELD_MULTIPLE = 4  # the tissue patch splits into 4 x 4 cell fields of view of whole pixels


def synthesize_dataset(
    out: str | os.PathLike,
    pairs: tuple[int, int, int],
    *,
    size: int = PATCH_SIZE_PX,
    seed: int = 0,
    gc_compression: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Generate a synthetic OCELOT dataset.

    Writes ``OUT/`` in the release layout (``metadata.json``, ``images/``, ``annotations/``) and,
    when the test split is not empty, ``OUT/gc/`` with the test split's Grand Challenge layouts
    (see :mod:`evaluation.gc_layout`). Pairs are numbered ``001, 002, ...`` across
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
    if not 16 <= size <= PATCH_SIZE_PX or size % FIELD_MULTIPLE:
        raise DataError(
            f"size {size}: expected a multiple of {FIELD_MULTIPLE} between 16 and "
            f"{PATCH_SIZE_PX} pixels"
        )
    if any(n < 0 for n in pairs):
        raise DataError(f"pairs {' '.join(map(str, pairs))}: counts must not be negative")
    if workers < 1:
        raise DataError(f"workers {workers}: expected at least 1")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: folder exists and is not empty (overwrite it to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        _write_dataset(
            staging, pairs, SyntheticConfig(size=size), seed, gc_compression, progress, workers
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_dataset(
    root: Path,
    pairs,
    config: SyntheticConfig,
    seed: int,
    gc_compression,
    progress: bool,
    workers: int,
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
            zip(jobs, rendered),
            total=len(jobs),
            desc="synthesize",
            unit="pair",
            disable=not progress,
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
