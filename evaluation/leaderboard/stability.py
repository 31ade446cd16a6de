"""How far a ranking can be trusted: a paired bootstrap of the test images.

One set of bootstrap replicates of the images is drawn and shared by every submission (paired:
in each replicate all submissions face the same resampled test set). Each submission was matched
once; a replicate's counts are the per-image counts weighted by how often each image is drawn,
so every replicate's mF1 of every submission comes from one matrix product, with the
leaderboard's formula (per-class F1 rounded to 4 decimals, then their mean).

From the replicate mF1 values follow, as in challengeR (Wiesenfarth et al., Sci. Rep. 2021):

* each submission's rank in each replicate (competition ranking: ties share the best rank,
  1, 1, 3), its median rank, 95% rank interval and how often it takes each rank;
* the mean Kendall's tau (tau-b) between the replicate rankings and the ranking on all images;
* for every ordered pair (A, B), the fraction of replicates in which A's mF1 exceeds B's, and a
  one-sided paired-bootstrap p-value of "A is not better than B", Holm-corrected over all
  ordered pairs.

The p-value is that of the bootstrap z-test: the difference on all images divided by the
standard deviation of the paired replicate differences, against the standard normal. A p-value
counted from the replicates (the share in which A does not beat B) cannot go below 1 / R, while
Holm's first threshold over S (S - 1) ordered pairs is alpha / (S (S - 1)): with 100 submissions
and 1,000 replicates no pair could ever be significant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from evaluation.bootstrap import DRAW_BLOCK_ELEMENTS, image_draw_blocks
from evaluation.metrics import precision_recall_f1

__all__ = [
    "RankStability",
    "competition_ranks",
    "holm_adjust",
    "kendall_tau_b",
    "leaderboard_f1",
    "organ_rankings",
    "rank_stability",
]

#: Coverage of the rank interval.
RANK_INTERVAL_COVERAGE = 0.95
# Elements of the (replicates, pairs) sign block in the vectorised Kendall's tau.
_TAU_BLOCK_ELEMENTS = 4_000_000
# Elements of the (replicates, submissions) block of differences in the pairwise tables.
_PAIRWISE_BLOCK_ELEMENTS = 4_000_000
# Values rounded per Python list: bounds the list's memory (about 32 bytes a value).
_ROUND_BLOCK = 1_000_000


def leaderboard_f1(totals: np.ndarray) -> np.ndarray:
    """Per-class F1 and mF1 from summed counts, exactly as the leaderboard computes them.

    Parameters
    ----------
    totals : array_like of int, shape (..., C, 3)
        ``[TP, FP, FN]`` per class.

    Returns
    -------
    ndarray of float64, shape (..., C + 1)
        Each class's F1 rounded to 4 decimals (Python's ``round``, as the organisers), then mF1,
        their mean (not rounded): the same floats as :func:`evaluation.metrics.metrics_from_counts`.
    """
    totals = np.asarray(totals)
    f1 = precision_recall_f1(totals[..., 0], totals[..., 1], totals[..., 2])[2]
    # Python's round rounds the float's exact decimal value; np.round scales first and can
    # differ in the last place, which would split ties the leaderboard keeps.
    flat = f1.ravel()
    rounded = np.concatenate(
        [
            np.array(
                [round(value, 4) for value in flat[start : start + _ROUND_BLOCK].tolist()],
                dtype=np.float64,
            )
            for start in range(0, flat.size, _ROUND_BLOCK)
        ]
        or [np.zeros(0)]
    ).reshape(f1.shape)
    return np.concatenate(
        [rounded, rounded.sum(axis=-1, keepdims=True) / rounded.shape[-1]], axis=-1
    )


def competition_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, highest value first, ties sharing the best rank (1, 1, 3).

    Parameters
    ----------
    values : array_like of float, shape (..., S)

    Returns
    -------
    ndarray of int64, shape (..., S)
        1 + the number of values strictly greater.
    """
    values = np.asarray(values, dtype=np.float64)
    return rankdata(-values, method="min", axis=-1).astype(np.int64)


def kendall_tau_b(reference: np.ndarray, rankings: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between one ranking and each of many, vectorised over the many.

    Parameters
    ----------
    reference : array_like, shape (S,)
        A ranking (any values; only their order counts).
    rankings : array_like, shape (R, S)
        Rankings to compare with it.

    Returns
    -------
    ndarray of float64, shape (R,)
        tau-b (as ``scipy.stats.kendalltau``); NaN where either ranking ties everything.
    """
    reference = np.asarray(reference)
    rankings = np.asarray(rankings)
    first, second = np.triu_indices(reference.shape[0], k=1)
    reference_sign = np.sign(reference[first] - reference[second]).astype(np.int64)
    reference_untied = np.count_nonzero(reference_sign)
    tau = np.empty(rankings.shape[0], dtype=np.float64)
    block = max(1, _TAU_BLOCK_ELEMENTS // max(1, len(first)))
    for start in range(0, rankings.shape[0], block):
        part = rankings[start : start + block]
        sign = np.sign(part[:, first] - part[:, second]).astype(np.int64)
        concordance = sign @ reference_sign
        untied = np.count_nonzero(sign, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau[start : start + block] = concordance / np.sqrt(untied * reference_untied)
    return tau


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values.

    Parameters
    ----------
    p_values : array_like of float, shape (m,)

    Returns
    -------
    ndarray of float64, shape (m,)
        Adjusted p-values: the k-th smallest becomes ``max over j <= k of (m - j + 1) p_(j)``,
        capped at 1. Rejecting where the adjusted value is ``<= alpha`` is Holm's procedure at
        level ``alpha``.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p_values, kind="stable")
    count = len(p_values)
    scaled = (count - np.arange(count)) * p_values[order]
    adjusted = np.empty(count, dtype=np.float64)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


@dataclass(frozen=True)
class RankStability:
    """Rank stability of S submissions under R paired bootstrap replicates.

    Attributes
    ----------
    f1 : ndarray of float64, shape (S, C + 1)
        Per-class F1 and mF1 on all images (the leaderboard's numbers).
    rank : ndarray of int64, shape (S,)
        Competition rank by mF1 on all images.
    replicate_mf1 : ndarray of float64, shape (R, S)
        mF1 in each replicate.
    replicate_rank : ndarray of int64, shape (R, S)
        Competition rank in each replicate.
    rank_median : ndarray of float64, shape (S,)
    rank_interval : ndarray of int64, shape (S, 2)
        The 2.5% and 97.5% quantiles of the replicate ranks (inverted-CDF, so ranks that occur).
    rank_frequency : ndarray of float64, shape (S, S)
        ``[s, k]``: fraction of replicates in which submission s has rank k + 1.
    kendall_tau : float or None
        Mean tau-b between the replicate rankings and ``rank``; None when undefined (fewer than
        two submissions, or all tied).
    beats : ndarray of float64, shape (S, S)
        ``[a, b]``: fraction of replicates in which a's mF1 exceeds b's (0 on the diagonal).
    p_value : ndarray of float64, shape (S, S)
        ``[a, b]``: one-sided p-value of "a is not better than b": ``1 - Phi(d / sd)`` with ``d``
        a's mF1 minus b's on all images and ``sd`` the standard deviation (ddof 1) of that
        difference over the replicates (0 where ``sd`` is 0 and ``d > 0``, else 1 there);
        NaN on the diagonal.
    p_adjusted : ndarray of float64, shape (S, S)
        ``p_value`` after Holm's correction over the S (S - 1) ordered pairs; NaN on the diagonal.
    significant : ndarray of bool, shape (S, S)
        ``p_adjusted <= alpha``.
    alpha : float
    seed : int
    """

    f1: np.ndarray
    rank: np.ndarray
    replicate_mf1: np.ndarray
    replicate_rank: np.ndarray
    rank_median: np.ndarray
    rank_interval: np.ndarray
    rank_frequency: np.ndarray
    kendall_tau: float | None
    beats: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    alpha: float
    seed: int

    @property
    def mf1(self) -> np.ndarray:
        """mF1 on all images, shape (S,)."""
        return self.f1[:, -1]


def _replicate_mf1(counts: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """(S, N, C, 3) counts -> (R, S) replicate mF1, drawing the replicates in blocks."""
    num_submissions, num_images = counts.shape[:2]
    # Counts stay exact in float64 (integers far below 2**53), and BLAS does the product.
    flat = counts.transpose(1, 0, 2, 3).reshape(num_images, -1).astype(np.float64)
    mf1 = np.empty((replicates, num_submissions), dtype=np.float64)
    # A block's draws and its product with the counts both stay within DRAW_BLOCK_ELEMENTS.
    rows = max(1, DRAW_BLOCK_ELEMENTS // max(num_images, flat.shape[1]))
    start = 0
    for draws in image_draw_blocks(num_images, replicates, seed, rows_per_block=rows):
        totals = (draws.astype(np.float64) @ flat).reshape(
            len(draws), num_submissions, *counts.shape[2:]
        )
        mf1[start : start + len(draws)] = leaderboard_f1(totals)[..., -1]
        start += len(draws)
    return mf1


def _pairwise(mf1: np.ndarray, replicate_mf1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P(a's mF1 > b's) over the replicates and the one-sided p-values, shape (S, S) each."""
    replicates, num_submissions = replicate_mf1.shape
    beats = np.empty((num_submissions, num_submissions), dtype=np.float64)
    spread = np.empty((num_submissions, num_submissions), dtype=np.float64)
    # Columns per step: each step's (replicates, columns) difference stays within a block.
    columns = max(1, _PAIRWISE_BLOCK_ELEMENTS // replicates)
    for a in range(num_submissions):
        for start in range(0, num_submissions, columns):
            difference = replicate_mf1[:, a : a + 1] - replicate_mf1[:, start : start + columns]
            beats[a, start : start + columns] = (
                np.count_nonzero(difference > 0, axis=0) / replicates
            )
            spread[a, start : start + columns] = difference.std(axis=0, ddof=1)
    difference = mf1[:, None] - mf1[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        p_value = norm.sf(difference / spread)
    # Without spread the difference is certain: A is better exactly when it is ahead.
    p_value = np.where(spread > 0, p_value, np.where(difference > 0, 0.0, 1.0))
    np.fill_diagonal(p_value, np.nan)
    return beats, p_value


def rank_stability(
    counts: np.ndarray, *, replicates: int = 1000, seed: int = 0, alpha: float = 0.05
) -> RankStability:
    """Paired bootstrap of the images: rank distributions and pairwise significance.

    Parameters
    ----------
    counts : array_like of int, shape (S, N, C, 3)
        ``[TP, FP, FN]`` of each submission, image and class (S >= 1, N >= 1).
    replicates : int
        Bootstrap replicates R (>= 2: the p-values need the spread of the replicates).
    seed : int
        Seed of the resampling; the same counts, seed and replicates give the same result.
    alpha : float
        Family-wise error rate of the significance map, in (0, 1).

    Returns
    -------
    RankStability
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 4 or counts.shape[0] < 1 or counts.shape[1] < 1 or counts.shape[3] != 3:
        raise ValueError(f"counts must have shape (S >= 1, N >= 1, C, 3), got {counts.shape}")
    if replicates < 2:
        raise ValueError(f"replicates must be >= 2, got {replicates}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    num_submissions, num_images = counts.shape[:2]
    f1 = leaderboard_f1(counts.sum(axis=1))
    rank = competition_ranks(f1[:, -1])
    replicate_mf1 = _replicate_mf1(counts, replicates, seed)
    replicate_rank = competition_ranks(replicate_mf1)
    tail = (1 - RANK_INTERVAL_COVERAGE) / 2
    rank_interval = np.quantile(
        replicate_rank, [tail, 1 - tail], axis=0, method="inverted_cdf"
    ).T.astype(np.int64)
    rank_frequency = (
        np.stack(
            [
                np.bincount(replicate_rank[:, s] - 1, minlength=num_submissions)
                for s in range(num_submissions)
            ]
        )
        / replicates
    )
    tau = kendall_tau_b(rank, replicate_rank) if num_submissions > 1 else np.array([np.nan])
    beats, p_value = _pairwise(f1[:, -1], replicate_mf1)
    off_diagonal = ~np.eye(num_submissions, dtype=bool)
    p_adjusted = np.full_like(p_value, np.nan)
    p_adjusted[off_diagonal] = holm_adjust(p_value[off_diagonal])
    return RankStability(
        f1=f1,
        rank=rank,
        replicate_mf1=replicate_mf1,
        replicate_rank=replicate_rank,
        rank_median=np.median(replicate_rank, axis=0),
        rank_interval=rank_interval,
        rank_frequency=rank_frequency,
        kendall_tau=None if np.all(np.isnan(tau)) else float(np.nanmean(tau)),
        beats=beats,
        p_value=p_value,
        p_adjusted=p_adjusted,
        significant=off_diagonal & (p_adjusted <= alpha),
        alpha=float(alpha),
        seed=int(seed),
    )


def organ_rankings(counts: np.ndarray, organs: Sequence[str]) -> dict:
    """The ranking within each organ, by the mF1 over that organ's images.

    Parameters
    ----------
    counts : array_like of int, shape (S, N, C, 3)
    organs : sequence of str, length N
        Organ of each image.

    Returns
    -------
    dict
        Organ (sorted) -> ``{"images": int, "f1": (S, C + 1) per-class F1 and mF1,
        "rank": (S,) competition ranks}``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    organ_of_image = np.asarray(organs, dtype=object)
    if organ_of_image.shape != (counts.shape[1],):
        raise ValueError(f"organs must name all {counts.shape[1]} images, got {len(organs)}")
    rankings = {}
    for organ in sorted(set(organs)):
        of_organ = organ_of_image == organ
        f1 = leaderboard_f1(counts[:, of_organ].sum(axis=1))
        rankings[organ] = {
            "images": int(of_organ.sum()),
            "f1": f1,
            "rank": competition_ranks(f1[:, -1]),
        }
    return rankings
