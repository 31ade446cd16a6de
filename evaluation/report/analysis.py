"""Everything the report shows, computed once: scores, curves, intervals, per-image rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.bootstrap import bootstrap_f1, bootstrap_f1_by_group
from evaluation.confidence import ThresholdCurve, class_curves, shared_threshold_mf1
from evaluation.constants import CLASS_NAMES, MATCH_RADIUS_PX
from evaluation.error_analysis import (
    ErrorCounts,
    bootstrap_errors,
    error_counts,
    per_organ_summaries,
    summarise,
)
from evaluation.metrics import ScoreReport, matcher, score
from evaluation.points import PointSet
from evaluation.tissue import TissueMaps

__all__ = ["Analysis", "analyse", "image_rows"]


@dataclass(frozen=True)
class Analysis:
    """The numbers behind a report.

    Attributes
    ----------
    score : ScoreReport
        The leaderboard numbers (all predictions kept) with the chosen matching.
    matched : ndarray of int64, shape (len(predictions),)
        Ground-truth row matched by each prediction, or -1.
    curves : dict
        Class name -> :class:`evaluation.confidence.ThresholdCurve`.
    shared_threshold, shared_mf1 : ndarray, shape (K,)
        mF1 when one confidence threshold applies to both classes (thresholds descending).
    intervals : dict
        :func:`evaluation.bootstrap.bootstrap_f1` over all images.
    organ_intervals : dict or None
        Organ -> :func:`evaluation.bootstrap.bootstrap_f1` over that organ's images.
    errors : ErrorCounts
        Per-image counts of :mod:`evaluation.error_analysis` (strata with tissue only).
    error_intervals : dict
        :func:`evaluation.error_analysis.bootstrap_errors`, on the replicates of ``intervals``.
    settings : dict
        ``radius_px``, ``matching``, ``replicates``, ``confidence``, ``seed``, ``num_images``.
    """

    score: ScoreReport
    matched: np.ndarray
    curves: dict[str, ThresholdCurve]
    shared_threshold: np.ndarray
    shared_mf1: np.ndarray
    intervals: dict
    organ_intervals: dict | None
    errors: ErrorCounts
    error_intervals: dict
    settings: dict

    def class_summary(self, name: str) -> dict:
        """AP and the best-F1 operating point of one class (unrounded floats)."""
        curve = self.curves[name]
        return {"average_precision": curve.average_precision(), "best": curve.best()}

    def best_shared_threshold(self) -> dict:
        """The single threshold for both classes with the highest mF1 (highest such threshold)."""
        if len(self.shared_threshold) == 0:
            return {"threshold": None, "mF1": 0.0}
        k = int(np.argmax(self.shared_mf1))
        return {"threshold": float(self.shared_threshold[k]), "mF1": float(self.shared_mf1[k])}

    def to_dict(self) -> dict:
        """JSON document of the report: settings, scores, per-class curves, intervals."""
        document = {
            "settings": self.settings,
            **self.score.to_dict(),
            "classes": {},
            "shared_threshold": self.best_shared_threshold(),
            "intervals": self.intervals,
        }
        for name, curve in self.curves.items():
            document["classes"][name] = {
                **self.class_summary(name),
                "curve": {
                    "threshold": curve.threshold.astype(float).tolist(),
                    "tp": curve.tp.tolist(),
                    "fp": curve.fp.tolist(),
                    "num_gt": curve.num_gt,
                },
            }
        if self.organ_intervals is not None:
            document["organ_intervals"] = self.organ_intervals
        document["analysis"] = {**summarise(self.errors), "intervals": self.error_intervals}
        organs = [result.get("organ") for result in self.score.results]
        if self.score.per_organ is not None:
            document["analysis"]["per_organ"] = per_organ_summaries(self.errors, organs)
        return document


def analyse(
    predictions: PointSet,
    ground_truth: PointSet,
    num_images: int,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    matching: str = "greedy",
    organs: Sequence[str] | None = None,
    tissue: TissueMaps | None = None,
    replicates: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Analysis:
    """Score, then compute the confidence-aware metrics, the error analysis and intervals.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        Points of images ``0..num_images-1``.
    num_images : int
        Number of images (the GT's ``num_images``).
    radius_px : float
        Matching cutoff in pixels (inclusive).
    matching : {"greedy", "hungarian"}
        The challenge's rule, or the optimal pairing. With ``"hungarian"`` the threshold curves
        threshold that one pairing of all predictions (no re-matching per threshold).
    organs : sequence of str, optional
        Organ of each image; enables the per-organ numbers and intervals.
    tissue : TissueMaps, optional
        Tissue of every image; enables the error analysis's tissue strata.
    replicates, confidence, seed
        Bootstrap settings (see :func:`evaluation.bootstrap.bootstrap_f1`).

    Returns
    -------
    Analysis
    """
    report = score(
        predictions, ground_truth, num_images, radius_px=radius_px, organs=organs, matching=matching
    )
    matched, counts = report.matched, report.counts
    curves = class_curves(predictions, ground_truth, matched)
    shared_threshold, shared_mf1 = shared_threshold_mf1(curves)
    bootstrap_settings = {"replicates": replicates, "confidence": confidence, "seed": seed}
    errors = error_counts(
        predictions,
        ground_truth,
        num_images,
        matched=matched,
        radius_px=radius_px,
        tissue=tissue,
        matcher=matcher(matching),
    )
    return Analysis(
        score=report,
        matched=matched,
        curves=curves,
        shared_threshold=shared_threshold,
        shared_mf1=shared_mf1,
        intervals=bootstrap_f1(counts, **bootstrap_settings),
        organ_intervals=None
        if organs is None
        else bootstrap_f1_by_group(counts, organs, **bootstrap_settings),
        errors=errors,
        error_intervals=bootstrap_errors(errors, **bootstrap_settings),
        settings={
            "radius_px": float(radius_px),
            "matching": matching,
            "num_images": num_images,
            **bootstrap_settings,
        },
    )


def image_rows(analysis: Analysis) -> list[dict]:
    """Per-image rows of the report table: the scorer's results plus the image's mF1.

    A class with neither predictions nor ground truth in an image has no F1 there (None), and the
    image's mF1 is the mean over the classes that have one (None if neither has).
    """
    rows = []
    for result in analysis.score.results:
        row = dict(result)
        defined = []
        for name in CLASS_NAMES.values():
            if result[f"TP/{name}"] + result[f"FP/{name}"] + result[f"FN/{name}"] == 0:
                row[f"F1/{name}"] = None
            else:
                defined.append(result[f"F1/{name}"])
        row["mF1"] = sum(defined) / len(defined) if defined else None
        rows.append(row)
    return rows
