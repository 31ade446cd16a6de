"""Score every submission of a folder with the leaderboard's rule, in parallel processes.

Each submission is read, validated and matched once, by :func:`evaluation.score` with the
challenge's greedy rule and its 15 px cutoff. What the ranking and the bootstrap need is kept:
the published numbers over all images and the per-image TP/FP/FN of each class. A submission
that cannot be read or breaks the format is kept as failed, with its one-line error; it does
not stop the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.bootstrap import count_matrix
from evaluation.constants import MATCH_RADIUS_PX
from evaluation.errors import InputError, OcelotError, os_error_message
from evaluation.formats import PointSet, read_points_document
from evaluation.metrics import score

__all__ = ["SubmissionScore", "find_submissions", "score_submission", "score_submissions"]


@dataclass(frozen=True)
class SubmissionScore:
    """One submission, scored or failed.

    Attributes
    ----------
    name : str
        The file stem.
    aggregates : dict or None
        The leaderboard's numbers over all images (:attr:`evaluation.ScoreReport.aggregates`);
        None when failed.
    counts : ndarray of int64, shape (N, C, 3), or None
        ``[TP, FP, FN]`` per image and class (classes in ``CLASS_NAMES`` order); None when failed.
    error : str or None
        The one-line reason a submission failed; None when scored.
    """

    name: str
    aggregates: dict | None = None
    counts: np.ndarray | None = None
    error: str | None = None

    @property
    def scored(self) -> bool:
        """Whether the submission was scored (else it failed)."""
        return self.error is None


def find_submissions(folder: str | os.PathLike) -> list[Path]:
    """The submissions of a folder: its ``*.json`` files, sorted by name.

    Raises
    ------
    InputError
        ``folder`` is not a folder or holds no ``*.json`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of submissions")
    paths = sorted(path for path in folder.glob("*.json") if path.is_file())
    if not paths:
        raise InputError(f"{folder}: no submissions (*.json files) in this folder")
    return paths


def score_submission(path: str | os.PathLike, ground_truth: PointSet, num_images: int,
                     *, radius_px: float = MATCH_RADIUS_PX) -> SubmissionScore:
    """Read, validate and score one submission; a bad file gives a failed result, not an error.

    Parameters
    ----------
    path : path-like
        A "Multiple points" predictions file; its stem names the submission.
    ground_truth : PointSet
        Ground truth of images ``0..num_images-1``.
    num_images : int
    radius_px : float
        Matching cutoff in pixels; the leaderboard's is ``MATCH_RADIUS_PX``.

    Returns
    -------
    SubmissionScore
    """
    name = Path(path).stem
    try:
        predictions, _ = read_points_document(path, role="predictions", num_images=num_images)
    except OcelotError as error:
        return SubmissionScore(name=name, error=str(error))
    except OSError as error:
        return SubmissionScore(name=name, error=os_error_message(error))
    report = score(predictions, ground_truth, num_images, radius_px=radius_px)
    return SubmissionScore(name=name, aggregates=report.aggregates,
                           counts=count_matrix(report.counts))


# Each worker process receives the ground truth once, not once per submission.
_worker_truth: tuple[PointSet, int, float] | None = None


def _set_worker_truth(ground_truth: PointSet, num_images: int, radius_px: float) -> None:
    global _worker_truth
    _worker_truth = (ground_truth, num_images, radius_px)


def _score_in_worker(path: Path) -> SubmissionScore:
    ground_truth, num_images, radius_px = _worker_truth
    return score_submission(path, ground_truth, num_images, radius_px=radius_px)


def score_submissions(paths: Sequence[str | os.PathLike], ground_truth: PointSet,
                      num_images: int, *, radius_px: float = MATCH_RADIUS_PX, workers: int = 1,
                      progress: Callable | None = None) -> list[SubmissionScore]:
    """Score many submissions, ``workers`` processes at a time.

    Parameters
    ----------
    paths : sequence of path-like
        Submission files.
    ground_truth : PointSet
    num_images : int
    radius_px : float
        Matching cutoff in pixels.
    workers : int
        Processes scoring in parallel (>= 1); 1 scores in this process.
    progress : callable, optional
        Wraps the iterator of results, e.g. ``functools.partial(tqdm, total=len(paths))``.

    Returns
    -------
    list of SubmissionScore
        In the order of ``paths``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    progress = progress or (lambda results: results)
    workers = min(workers, len(paths))
    if workers <= 1:
        return list(progress(score_submission(path, ground_truth, num_images, radius_px=radius_px)
                             for path in paths))
    with ProcessPoolExecutor(max_workers=workers, initializer=_set_worker_truth,
                             initargs=(ground_truth, num_images, radius_px)) as pool:
        return list(progress(pool.map(_score_in_worker, [Path(path) for path in paths])))
