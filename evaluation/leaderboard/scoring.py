"""Score every submission of a folder with the leaderboard's rule, in parallel processes.

Each submission is read, validated and matched once, by :func:`evaluation.score` with the
challenge's greedy rule and its 15 px cutoff. What the ranking and the bootstrap need is kept:
the published numbers over all images and the per-image TP/FP/FN of each class. A submission
that is not a regular file of the folder, is the ground truth, cannot be read, breaks the format
or exceeds a bound while being scored is kept as failed, with its one-line error; it does not
stop the others.
"""

from __future__ import annotations

import functools
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.bootstrap import count_matrix
from evaluation.constants import MATCH_RADIUS_PX
from evaluation.error_analysis import ErrorCounts, error_counts
from evaluation.errors import InputError, OcelotError, os_error_message
from evaluation.limits import Limits, current_limits, limits_in_force
from evaluation.metrics import score
from evaluation.multiple_points import read_points_document
from evaluation.points import PointSet
from evaluation.tissue import TissueMaps

__all__ = [
    "SubmissionScore",
    "find_submissions",
    "score_submission",
    "score_submissions",
    "submission_name",
]


@dataclass(frozen=True)
class SubmissionScore:
    """One submission, scored or failed.

    Attributes
    ----------
    name : str
        The file name without ``.json`` (:func:`submission_name`).
    aggregates : dict or None
        The leaderboard's numbers over all images (:attr:`evaluation.ScoreReport.aggregates`);
        None when failed.
    counts : ndarray of int64, shape (N, C, 3), or None
        ``[TP, FP, FN]`` per image and class (classes in ``CLASS_NAMES`` order); None when failed.
    error : str or None
        The one-line reason a submission failed; None when scored.
    errors : ErrorCounts or None
        Per-image counts of :mod:`evaluation.error_analysis` (its strata with tissue only);
        None when failed.
    """

    name: str
    aggregates: dict | None = None
    counts: np.ndarray | None = None
    error: str | None = None
    errors: ErrorCounts | None = None

    @property
    def scored(self) -> bool:
        """Whether the submission was scored (else it failed)."""
        return self.error is None


def find_submissions(folder: str | os.PathLike) -> list[Path]:
    """The submissions of a folder: its ``*.json`` entries, sorted by name.

    Hidden files (a name starting with ``.``) are skipped, as the organisers' converter skips
    them, so that every submission has a non-empty name of its own (:func:`submission_name`).
    Every other entry is listed, links included: :func:`score_submission` refuses what is not a
    regular file of the folder, or is the ground truth, as a failed submission.

    Raises
    ------
    InputError
        ``folder`` is not a folder or holds no ``*.json`` entry.
    LimitError
        More entries than the bound on submissions (``OCELOT_MAX_SUBMISSIONS``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of submissions")
    paths = sorted(path for path in folder.glob("*.json") if not path.name.startswith("."))
    if not paths:
        raise InputError(f"{folder}: no submissions (*.json files) in this folder")
    current_limits().check("submissions", len(paths), str(folder), "submissions (*.json files)")
    return paths


def submission_name(path: str | os.PathLike) -> str:
    """The name of a submission: its file name without ``.json`` (``a.json.json`` is ``a.json``)."""
    return Path(path).name.removesuffix(".json")


def _refusal(path: Path, ground_truth: Path | None) -> str | None:
    """Why ``path`` may not be scored as a submission, or None.

    A submission is a regular file directly in its folder: a link could make anything a
    submission, the ground truth first of all, and a device or a FIFO could block the run.
    """
    try:
        status = os.lstat(path)
    except OSError as error:
        return os_error_message(error)
    if stat.S_ISLNK(status.st_mode):
        return f"{path}: is a symbolic link; a submission must be a regular file in its folder"
    if not stat.S_ISREG(status.st_mode):
        return f"{path}: not a regular file"
    if ground_truth is not None and ground_truth.is_file() and os.path.samefile(path, ground_truth):
        return f"{path}: is the ground truth ({ground_truth}); it is not ranked"
    return None


def score_submission(
    path: str | os.PathLike,
    ground_truth: PointSet,
    num_images: int,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    ground_truth_path: str | os.PathLike | None = None,
    tissue: TissueMaps | None = None,
    gt_tissue: np.ndarray | None = None,
) -> SubmissionScore:
    """Read, validate and score one submission; a bad file gives a failed result, not an error.

    Parameters
    ----------
    path : path-like
        A "Multiple points" predictions file; :func:`submission_name` names the submission.
    ground_truth : PointSet
        Ground truth of images ``0..num_images-1``.
    num_images : int
    radius_px : float
        Matching cutoff in pixels; the leaderboard's is ``MATCH_RADIUS_PX``.
    ground_truth_path : path-like, optional
        The ground-truth file: a submission that is this file is refused.
    tissue : TissueMaps, optional
        Tissue of every image, for the error analysis's strata.
    gt_tissue : ndarray of uint8, optional
        ``tissue.values_at(ground_truth)``, computed once for all submissions.

    Returns
    -------
    SubmissionScore
        Failed, with its one-line reason, when the file is refused, cannot be read, breaks the
        format or exceeds a bound while being scored (or the memory runs out doing so).
    """
    path = Path(path)
    name = submission_name(path)
    refusal = _refusal(path, None if ground_truth_path is None else Path(ground_truth_path))
    if refusal is not None:
        return SubmissionScore(name=name, error=refusal)
    try:
        predictions, _ = read_points_document(path, role="predictions", num_images=num_images)
        report = score(predictions, ground_truth, num_images, radius_px=radius_px)
        errors = error_counts(
            predictions,
            ground_truth,
            num_images,
            matched=report.matched,
            radius_px=radius_px,
            tissue=tissue,
            gt_tissue=gt_tissue,
        )
    except InputError as error:
        return SubmissionScore(name=name, error=str(error))
    except OcelotError as error:  # a bound hit while scoring: say which file
        message = str(error)
        return SubmissionScore(
            name=name, error=message if message.startswith(str(path)) else f"{path}: {message}"
        )
    except OSError as error:
        return SubmissionScore(name=name, error=os_error_message(error))
    except MemoryError:
        return SubmissionScore(name=name, error=f"{path}: not enough memory to score it")
    return SubmissionScore(
        name=name, aggregates=report.aggregates, counts=count_matrix(report.counts), errors=errors
    )


# Each worker process receives the ground truth (and tissue) once, not once per submission.
_worker_scorer: Callable[[str | os.PathLike], SubmissionScore] | None = None


def _start_worker(
    scorer: Callable[[str | os.PathLike], SubmissionScore], parent: int, limits: Limits
) -> None:
    global _worker_scorer
    _worker_scorer = scorer
    # The parent's limits, for the worker's whole life (a spawned worker does not inherit them).
    limits_in_force(limits).__enter__()
    threading.Thread(target=_exit_with_parent, args=(parent, os.getppid()), daemon=True).start()


def _exit_with_parent(parent: int, spawner: int) -> None:
    """End this worker once the leaderboard's process is gone, whatever signal ended it.

    A parent killed by SIGKILL cannot stop its workers; without this they would score on,
    holding the caller's pipes open. The worker is re-parented the moment the process that
    started it dies (even before that one is reaped), and ``parent`` stops existing once reaped.
    """
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != spawner:
            os._exit(1)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the number now belongs to another user's process
            os._exit(1)


#: Seconds between a worker's checks that its parent lives.
_PARENT_POLL_S = 0.5


def _score_in_worker(path: Path) -> SubmissionScore:
    return _worker_scorer(path)


def score_submissions(
    paths: Sequence[str | os.PathLike],
    ground_truth: PointSet,
    num_images: int,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    workers: int = 1,
    progress: Callable | None = None,
    ground_truth_path: str | os.PathLike | None = None,
    tissue: TissueMaps | None = None,
) -> list[SubmissionScore]:
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
    ground_truth_path : path-like, optional
        The ground-truth file, refused as a submission.
    tissue : TissueMaps, optional
        Tissue of every image, for the error analysis's strata.

    Returns
    -------
    list of SubmissionScore
        In the order of ``paths``. Worker processes end with this process, however it ends.
    """
    gt_tissue = None if tissue is None else tissue.values_at(ground_truth)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    progress = progress or (lambda results: results)
    workers = min(workers, len(paths))
    scorer = functools.partial(
        score_submission,
        ground_truth=ground_truth,
        num_images=num_images,
        radius_px=radius_px,
        ground_truth_path=None if ground_truth_path is None else Path(ground_truth_path),
        tissue=tissue,
        gt_tissue=gt_tissue,
    )
    if workers <= 1:
        return list(progress(scorer(path) for path in paths))
    with ProcessPoolExecutor(
        max_workers=workers,
        initializer=_start_worker,
        initargs=(scorer, os.getpid(), current_limits()),
    ) as pool:
        return list(progress(pool.map(_score_in_worker, [Path(path) for path in paths])))
