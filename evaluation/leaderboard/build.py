"""From a folder of submissions to ``leaderboard.json``, ``leaderboard.csv`` and ``.html``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.constants import MATCH_RADIUS_PX
from evaluation.files import check_output_set, write_output_set
from evaluation.ground_truth import GroundTruth
from evaluation.leaderboard.document import leaderboard_csv, leaderboard_document
from evaluation.leaderboard.failures import add_failure_columns, rare_pairing_stability
from evaluation.leaderboard.scoring import SubmissionScore, score_submissions
from evaluation.leaderboard.stability import RankStability, organ_rankings, rank_stability
from evaluation.tissue import TissueMaps

__all__ = ["Leaderboard", "build_leaderboard", "write_leaderboard"]

#: Files a leaderboard is written to, inside the output folder.
OUTPUT_FILES = ("leaderboard.json", "leaderboard.csv", "leaderboard.html")


@dataclass(frozen=True)
class Leaderboard:
    """A leaderboard before it is written.

    Attributes
    ----------
    document : dict
        The ``leaderboard.json`` document.
    scores : list of SubmissionScore
        Every submission, in file-name order.
    stability : RankStability or None
        Of the scored submissions (in ``scores`` order); None when none was scored.
    rare : RankStability or None
        The ranking on the rare cell-tissue pairings, same rows; None without tissue.
    """

    document: dict
    scores: list
    stability: RankStability | None
    rare: RankStability | None = None

    @property
    def scored(self) -> list[SubmissionScore]:
        """The scored submissions, in the order of ``stability``'s rows."""
        return [entry for entry in self.scores if entry.scored]


def build_leaderboard(
    submissions: Sequence[str | os.PathLike],
    ground_truth: GroundTruth,
    *,
    replicates: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    workers: int = 1,
    progress: Callable | None = None,
    settings: dict | None = None,
    ground_truth_path: str | os.PathLike | None = None,
    tissue: TissueMaps | None = None,
) -> Leaderboard:
    """Score every submission, rank, and bootstrap the ranking.

    Parameters
    ----------
    submissions : sequence of path-like
        Submission files ("Multiple points" documents), e.g. from
        :func:`evaluation.leaderboard.scoring.find_submissions`; each is named by
        :func:`evaluation.leaderboard.scoring.submission_name`.
    ground_truth : GroundTruth
        Of at least one image; its ``organs``, when known, add the ranking within each organ.
    replicates, seed, alpha
        Of :func:`evaluation.leaderboard.stability.rank_stability`.
    workers : int
        Processes scoring in parallel.
    progress : callable, optional
        Wraps the iterator of scored submissions (e.g. a tqdm bar).
    settings : dict, optional
        Extra entries for the document's ``settings`` (e.g. the input paths).
    ground_truth_path : path-like, optional
        The ground-truth file: a submission that is this file is refused.
    tissue : TissueMaps, optional
        Tissue of every image: adds the F1 per stratum and the rare-pairing ranking.

    Returns
    -------
    Leaderboard
    """
    num_images, organs = ground_truth.num_images, ground_truth.organs
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    scores = score_submissions(
        submissions,
        ground_truth.points,
        num_images,
        radius_px=MATCH_RADIUS_PX,
        workers=workers,
        progress=progress,
        ground_truth_path=ground_truth_path,
        tissue=tissue,
    )
    scored = [entry for entry in scores if entry.scored]
    stability = rankings = rare = None
    if scored:
        counts = np.stack([entry.counts for entry in scored])
        stability = rank_stability(counts, replicates=replicates, seed=seed, alpha=alpha)
        rankings = None if organs is None else organ_rankings(counts, organs)
        rare = rare_pairing_stability(
            [entry.errors for entry in scored], replicates=replicates, seed=seed, alpha=alpha
        )
    document = leaderboard_document(
        scores,
        stability,
        organ_rankings=rankings,
        settings={
            "num_images": int(num_images),
            "submissions": len(scores),
            "scored": len(scored),
            "radius_px": MATCH_RADIUS_PX,
            "matching": "greedy",
            "ranking": "competition (1, 1, 3)",
            "replicates": int(replicates),
            "seed": int(seed),
            "alpha": float(alpha),
            "rank_interval": 0.95,
            "multiple_testing": "holm",
            **(settings or {}),
        },
    )
    add_failure_columns(
        document, [entry.name for entry in scored], [entry.errors for entry in scored], rare
    )
    return Leaderboard(document=document, scores=scores, stability=stability, rare=rare)


def write_leaderboard(
    leaderboard: Leaderboard, out: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = ()
) -> list[Path]:
    """Write ``OUTPUT_FILES`` into ``out`` (created if missing) as one set.

    All three are encoded, and every target checked, before the first is written; they are
    renamed into place together (:func:`evaluation.files.write_output_set`), so an error leaves
    no partial output and two runs on one folder cannot mix.

    Parameters
    ----------
    leaderboard : Leaderboard
    out : path-like
    inputs : sequence of path-like
        The files the leaderboard was made from: none of them is replaced.

    Returns
    -------
    list of Path
        The files written.
    """
    from evaluation.leaderboard.page import render_page  # matplotlib only when writing a page

    check_output_set(out, OUTPUT_FILES, inputs=inputs)
    scored = leaderboard.scored
    counts = np.stack([entry.counts for entry in scored]) if scored else None
    contents = [
        (json.dumps(leaderboard.document, allow_nan=False) + "\n").encode("utf-8"),
        leaderboard_csv(leaderboard.document).encode("utf-8"),
        render_page(
            leaderboard.document,
            [entry.name for entry in scored],
            leaderboard.stability,
            counts,
            rare=leaderboard.rare,
        ).encode("utf-8"),
    ]
    return write_output_set(out, dict(zip(OUTPUT_FILES, contents, strict=True)), inputs=inputs)
