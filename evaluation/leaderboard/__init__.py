"""The leaderboard: rank many submissions and show how far the ranking can be trusted.

:mod:`~evaluation.leaderboard.scoring` scores every submission of a folder with the challenge's
rule, :mod:`~evaluation.leaderboard.stability` runs one paired bootstrap of the images over all of
them, :mod:`~evaluation.leaderboard.document` and :mod:`~evaluation.leaderboard.page` write
``leaderboard.json``, ``leaderboard.csv`` and ``leaderboard.html``. The page needs matplotlib
(imported by :mod:`~evaluation.leaderboard.page` only).
"""

from evaluation.leaderboard.build import Leaderboard, build_leaderboard, write_leaderboard
from evaluation.leaderboard.document import leaderboard_csv, leaderboard_document
from evaluation.leaderboard.scoring import (
    SubmissionScore,
    find_submissions,
    score_submission,
    score_submissions,
)
from evaluation.leaderboard.stability import (
    RankStability,
    competition_ranks,
    holm_adjust,
    kendall_tau_b,
    leaderboard_f1,
    organ_rankings,
    rank_stability,
)

__all__ = [
    "Leaderboard",
    "RankStability",
    "SubmissionScore",
    "build_leaderboard",
    "competition_ranks",
    "find_submissions",
    "holm_adjust",
    "kendall_tau_b",
    "leaderboard_csv",
    "leaderboard_document",
    "leaderboard_f1",
    "organ_rankings",
    "rank_stability",
    "score_submission",
    "score_submissions",
    "write_leaderboard",
]
