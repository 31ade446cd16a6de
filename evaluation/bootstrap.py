"""Bootstrap intervals of per-class F1 and mF1 over images.

The images are the unit that varies between test sets, so each replicate draws ``num_images``
images with replacement, sums their TP/FP/FN per class (micro-average, as the leaderboard does) and
computes F1 with the OCELOT formula (unrounded). The interval is the percentile interval of the
replicates. Seeded: the same counts, seed and settings give the same intervals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from evaluation.constants import CLASS_NAMES
from evaluation.metrics import precision_recall_f1

__all__ = [
    "DRAW_BLOCK_ELEMENTS",
    "bootstrap_f1",
    "bootstrap_f1_by_group",
    "count_matrix",
    "image_draw_blocks",
    "paired_replicates",
    "percentile_interval",
    "STATISTICS",
]

#: The statistics each interval is given for, in report order.
STATISTICS = tuple(f"F1/{name}" for name in CLASS_NAMES.values()) + ("mF1",)

#: Most draw counts (replicates x images) held at once: 16 MB of int64.
DRAW_BLOCK_ELEMENTS = 2_000_000


def _statistics(totals: np.ndarray) -> np.ndarray:
    """(..., C, 3) summed [TP, FP, FN] per class -> (..., C + 1) per-class F1, then mF1."""
    f1 = precision_recall_f1(totals[..., 0], totals[..., 1], totals[..., 2])[2]
    return np.concatenate([f1, f1.mean(axis=-1, keepdims=True)], axis=-1)


def count_matrix(counts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-image counts as one array.

    Parameters
    ----------
    counts : mapping
        ``TP/BC``, ``FP/BC``, ``FN/BC``, ``TP/TC``, ``FP/TC``, ``FN/TC`` -> (N,) int per image.

    Returns
    -------
    ndarray of int64, shape (N, C, 3)
        ``[TP, FP, FN]`` of each image and class, classes in ``CLASS_NAMES`` order.
    """
    return np.stack(
        [
            np.stack(
                [
                    np.asarray(counts[f"{kind}/{name}"], dtype=np.int64)
                    for kind in ("TP", "FP", "FN")
                ],
                axis=-1,
            )
            for name in CLASS_NAMES.values()
        ],
        axis=1,
    )


def image_draw_blocks(
    num_images: int,
    replicates: int,
    seed: int | np.random.SeedSequence = 0,
    rows_per_block: int | None = None,
) -> Iterator[np.ndarray]:
    """How often each image is drawn in each bootstrap replicate, a block of replicates at a time.

    Each replicate draws ``num_images`` images with replacement. Summing counts weighted by one
    row gives that replicate's micro-averaged counts; sharing the rows between submissions
    pairs their replicates (every submission sees the same resampled test set). The blocks hold
    consecutive rows of one random stream: the rows, and so every result, do not depend on the
    block size, while memory stays at one block whatever ``replicates`` x ``num_images`` is.

    Parameters
    ----------
    num_images : int
        Number of images N (>= 1).
    replicates : int
        Number of replicates R (>= 1).
    seed : int or numpy SeedSequence
        Seed of the resampling.
    rows_per_block : int, optional
        Replicates per block (>= 1); by default as many as ``DRAW_BLOCK_ELEMENTS`` counts hold.

    Yields
    ------
    ndarray of int64, shape (B, N)
        Draw counts of the next B replicates (B <= R in all); every row sums to N.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    rng = np.random.default_rng(seed)
    probabilities = np.full(num_images, 1 / num_images)
    rows = rows_per_block or max(1, DRAW_BLOCK_ELEMENTS // num_images)
    for start in range(0, replicates, rows):
        yield rng.multinomial(num_images, probabilities, size=min(rows, replicates - start))


def _replicate_totals(
    per_image: np.ndarray, replicates: int, seed: int | np.random.SeedSequence
) -> np.ndarray:
    """(N, C, 3) per-image counts -> (R, C, 3) summed counts of each bootstrap replicate."""
    return np.concatenate(
        [
            np.einsum("rn,nck->rck", draws, per_image)
            for draws in image_draw_blocks(len(per_image), replicates, seed)
        ]
    )


def percentile_interval(
    values: np.ndarray, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile bounds of ``values`` along axis 0, covering ``confidence``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail], axis=0)
    return low, high


def paired_replicates(
    counts_by_run: Mapping[object, Mapping[str, np.ndarray]],
    *,
    replicates: int = 1000,
    seed: int | np.random.SeedSequence = 0,
) -> dict[object, np.ndarray]:
    """Every run's statistics on the same bootstrap resamples of the test images.

    The paired option of the bootstrap: runs (models, seeds) scored on the same test images share
    the rows of :func:`image_draw_blocks`, so a difference between two runs, replicate by replicate,
    gives the interval of that difference without the image-to-image variation both runs see.

    Parameters
    ----------
    counts_by_run : mapping
        Run key -> per-image counts (as for :func:`bootstrap_f1`), every run on the same N
        images in the same order.
    replicates : int
        Number of bootstrap replicates (>= 1).
    seed : int or numpy SeedSequence
        Seed of the resampling, shared by all runs.

    Returns
    -------
    dict
        Run key -> ndarray of shape (replicates, len(STATISTICS)): ``STATISTICS`` (F1 per class,
        then mF1) of that run on each resample; row ``r`` of every run is the same resample.
        With one run and the same seed, :func:`bootstrap_f1`'s interval is the
        :func:`percentile_interval` of its rows.
    """
    per_run = {key: count_matrix(counts) for key, counts in counts_by_run.items()}
    sizes = {len(matrix) for matrix in per_run.values()}
    if len(sizes) != 1:
        raise ValueError(f"runs must be scored on the same images, got {sorted(sizes)} images")
    totals = {key: [] for key in per_run}
    for draws in image_draw_blocks(sizes.pop(), replicates, seed):
        for key, matrix in per_run.items():
            totals[key].append(np.einsum("rn,nck->rck", draws, matrix))
    return {key: _statistics(np.concatenate(blocks)) for key, blocks in totals.items()}


def bootstrap_f1(
    counts: Mapping[str, np.ndarray],
    *,
    replicates: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
) -> dict:
    """Percentile bootstrap interval of each class's F1 and of mF1, resampling images.

    Parameters
    ----------
    counts : mapping
        ``TP/BC``, ``FP/BC``, ``FN/BC``, ``TP/TC``, ``FP/TC``, ``FN/TC`` -> (N,) int per image, as
        :func:`evaluation.metrics.count_matches` returns.
    replicates : int
        Number of bootstrap replicates (>= 1).
    confidence : float
        Coverage of the interval, in (0, 1).
    seed : int or numpy SeedSequence
        Seed of the resampling.

    Returns
    -------
    dict
        For each of ``STATISTICS``: ``{"estimate", "low", "high"}`` (floats: the statistic on all
        images and the interval bounds), plus ``images`` (N), ``replicates`` and ``confidence``.
        With N = 0 the three values are None.
    """
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    per_image = count_matrix(counts)
    num_images = len(per_image)
    result = {"images": num_images, "replicates": int(replicates), "confidence": float(confidence)}
    if num_images == 0:
        result.update({key: {"estimate": None, "low": None, "high": None} for key in STATISTICS})
        return result
    replicate_values = _statistics(_replicate_totals(per_image, replicates, seed))
    estimate = _statistics(per_image.sum(axis=0))
    low, high = percentile_interval(replicate_values, confidence)
    for column, key in enumerate(STATISTICS):
        result[key] = {
            "estimate": float(estimate[column]),
            "low": float(low[column]),
            "high": float(high[column]),
        }
    return result


def bootstrap_f1_by_group(
    counts: Mapping[str, np.ndarray],
    groups: Sequence[str],
    *,
    replicates: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """:func:`bootstrap_f1` within each group of images (e.g. each organ).

    Parameters
    ----------
    counts : mapping
        Per-image counts, as for :func:`bootstrap_f1`.
    groups : sequence of str, length N
        Group of each image.
    replicates, confidence, seed
        As for :func:`bootstrap_f1`; each group gets its own random stream, spawned from ``seed``
        in sorted group order.

    Returns
    -------
    dict
        Group -> the :func:`bootstrap_f1` result for that group's images, groups sorted.
    """
    group_of_image = np.asarray(groups, dtype=object)
    per_image = {key: np.asarray(values) for key, values in counts.items()}
    if any(len(values) != len(group_of_image) for values in per_image.values()):
        raise ValueError("groups must name the group of every image")
    names = sorted(set(groups))
    streams = np.random.SeedSequence(seed).spawn(len(names))
    return {
        name: bootstrap_f1(
            {key: values[group_of_image == name] for key, values in per_image.items()},
            replicates=replicates,
            confidence=confidence,
            seed=stream,
        )
        for name, stream in zip(names, streams, strict=True)
    }
