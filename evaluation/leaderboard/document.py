"""The leaderboard as data: ``leaderboard.json`` and ``leaderboard.csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np

from evaluation.constants import CLASS_NAMES
from evaluation.leaderboard.scoring import SubmissionScore
from evaluation.leaderboard.stability import RankStability
from evaluation.text import for_spreadsheet

__all__ = ["CSV_COLUMNS", "leaderboard_csv", "leaderboard_document"]

#: Columns of ``leaderboard.csv``, one row per submission in leaderboard order.
CSV_COLUMNS = (
    "rank",
    "name",
    "status",
    "mF1",
    "F1/BC",
    "F1/TC",
    "Pre/BC",
    "Rec/BC",
    "Pre/TC",
    "Rec/TC",
    "rank_median",
    "rank_low",
    "rank_high",
    "detection_F1",
    "accuracy",
    "rare_mF1",
    "rare_rank",
    "rare_rank_low",
    "rare_rank_high",
    "error",
)


def _ranked_order(names: Sequence[str], rank: np.ndarray) -> list[int]:
    """Indices by rank, ties by name."""
    return sorted(range(len(names)), key=lambda index: (int(rank[index]), names[index]))


def leaderboard_document(
    scores: Sequence[SubmissionScore],
    stability: RankStability | None,
    *,
    organ_rankings: dict | None = None,
    settings: dict,
) -> dict:
    """The ``leaderboard.json`` document.

    Parameters
    ----------
    scores : sequence of SubmissionScore
        Every submission; the scored ones in the order of ``stability``'s rows.
    stability : RankStability or None
        Of the scored submissions; None when none was scored.
    organ_rankings : dict, optional
        :func:`evaluation.leaderboard.stability.organ_rankings` of the scored submissions.
    settings : dict
        Recorded as ``settings``.

    Returns
    -------
    dict
        ``entries``: the scored submissions by rank (ties by name), each with ``name``,
        ``status: "scored"``, ``rank``, the published numbers and counts, ``rank_median``,
        ``rank_interval`` and ``rank_frequencies`` (rank -> fraction of replicates, nonzero
        ones); then the failed ones by name, each with ``name``, ``status: "failed"``, ``error``.
        ``kendall_tau``; ``pairwise[A][B]``: fraction of replicates in which A's mF1 exceeds
        B's; ``p_values[A][B]``: Holm-adjusted one-sided p-value of "A is not better than B";
        ``significant[A][B]``: ``p_values[A][B] <= alpha``; ``per_organ`` when organs are
        known; ``settings``.
    """
    scored = [entry for entry in scores if entry.scored]
    failed = sorted((entry for entry in scores if not entry.scored), key=lambda e: e.name)
    names = [entry.name for entry in scored]
    entries = []
    pairwise, p_values, significant = {}, {}, {}
    if stability is not None:
        if len(names) != len(stability.rank):
            raise ValueError(f"{len(names)} scored submissions but {len(stability.rank)} ranked")
        for index in _ranked_order(names, stability.rank):
            frequencies = stability.rank_frequency[index]
            entries.append(
                {
                    "name": names[index],
                    "status": "scored",
                    "rank": int(stability.rank[index]),
                    **scored[index].aggregates,
                    "rank_median": float(stability.rank_median[index]),
                    "rank_interval": [int(bound) for bound in stability.rank_interval[index]],
                    "rank_frequencies": {
                        str(rank + 1): float(frequencies[rank])
                        for rank in np.flatnonzero(frequencies)
                    },
                }
            )
        order = _ranked_order(names, stability.rank)
        for a in order:
            others = [b for b in order if b != a]
            pairwise[names[a]] = {names[b]: float(stability.beats[a, b]) for b in others}
            p_values[names[a]] = {names[b]: float(stability.p_adjusted[a, b]) for b in others}
            significant[names[a]] = {names[b]: bool(stability.significant[a, b]) for b in others}
    entries += [{"name": entry.name, "status": "failed", "error": entry.error} for entry in failed]
    document = {
        "entries": entries,
        "kendall_tau": None if stability is None else stability.kendall_tau,
        "pairwise": pairwise,
        "p_values": p_values,
        "significant": significant,
    }
    if organ_rankings is not None:
        document["per_organ"] = {
            organ: {
                "images": ranking["images"],
                "entries": [
                    {
                        "name": names[index],
                        "rank": int(ranking["rank"][index]),
                        **{
                            f"F1/{name}": float(ranking["f1"][index, column])
                            for column, name in enumerate(CLASS_NAMES.values())
                        },
                        "mF1": float(ranking["f1"][index, -1]),
                    }
                    for index in _ranked_order(names, ranking["rank"])
                ],
            }
            for organ, ranking in organ_rankings.items()
        }
    document["settings"] = settings
    return document


def leaderboard_csv(document: dict) -> str:
    """``leaderboard.csv``: one row per entry of the document, in its order (``CSV_COLUMNS``).

    Text cells (names, errors) that a spreadsheet would run as a formula start with ``'``.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for entry in document["entries"]:
        row = {
            key: for_spreadsheet(value) if type(value) is str else value
            for key, value in entry.items()
        }
        if entry["status"] == "scored":
            row["rank_low"], row["rank_high"] = entry["rank_interval"]
        if "rare_rank_interval" in entry:
            row["rare_rank_low"], row["rare_rank_high"] = entry["rare_rank_interval"]
        writer.writerow(row)
    return buffer.getvalue()
