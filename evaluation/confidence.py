"""Confidence-aware metrics: precision, recall and F1 at every confidence threshold, AP, best F1.

The challenge's greedy rule visits the predictions of an image and class in descending float32
confidence, and a visited prediction's match depends only on the predictions visited before it.
Keeping the predictions whose float32 confidence is ``>= t`` keeps a prefix of that visit order
(tied confidences are kept or dropped together), so their matches are exactly those of the full
run. One matching pass, one sort and two cumulative sums therefore give the counts at every
threshold. With threshold 0 every prediction is kept and the counts are those of
:func:`evaluation.score`.

One caveat, from the organisers' rule itself: tied predictions are visited in the order of numpy's
unstable argsort, which may change when other predictions are removed. With tied confidences, a
curve point (the full run's matches, thresholded) can therefore differ from re-scoring a file that
holds only the predictions above the threshold; with distinct confidences they are equal (tested).

A threshold ``t`` keeps a prediction when ``float32(probability) >= t``: the float32 value is the
one that orders the visits, so two predictions that tie in float32 are never split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.constants import CLASS_NAMES
from evaluation.metrics import precision_recall_f1
from evaluation.points import PointSet

__all__ = ["ThresholdCurve", "class_curves", "shared_threshold_mf1"]


@dataclass(frozen=True)
class ThresholdCurve:
    """Detection counts of one class at every distinct confidence threshold.

    Attributes
    ----------
    threshold : ndarray of float32, shape (K,)
        The distinct float32 confidences of the predictions, strictly descending. Point ``k`` keeps
        the predictions with ``float32(probability) >= threshold[k]``.
    tp, fp : ndarray of int64, shape (K,)
        True and false positives among the kept predictions.
    num_gt : int
        Ground-truth points of the class; ``FN = num_gt - TP``.
    """

    threshold: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    num_gt: int

    @classmethod
    def from_matches(cls, probability, is_tp, num_gt) -> ThresholdCurve:
        """Build the curve from one matching of all predictions of a class.

        Parameters
        ----------
        probability : array_like of float, shape (P,)
            Confidences of the class's predictions, over all images.
        is_tp : array_like of bool, shape (P,)
            Whether each prediction was matched (the matching must visit predictions in
            descending confidence, as the challenge's greedy rule does).
        num_gt : int
            Ground-truth points of the class, over all images.
        """
        confidence = np.asarray(probability).astype(np.float32).reshape(-1)
        is_tp = np.asarray(is_tp, dtype=bool).reshape(-1)
        if confidence.shape != is_tp.shape:
            raise ValueError(f"probability {confidence.shape} and is_tp {is_tp.shape} differ")
        order = np.argsort(-confidence, kind="stable")
        confidence = confidence[order]
        tp = np.cumsum(is_tp[order], dtype=np.int64)
        # The last prediction of each run of equal confidences closes a threshold.
        last = (
            np.flatnonzero(np.append(confidence[1:] != confidence[:-1], True))
            if len(order)
            else np.zeros(0, dtype=np.int64)
        )
        return cls(
            threshold=confidence[last], tp=tp[last], fp=last + 1 - tp[last], num_gt=int(num_gt)
        )

    @property
    def fn(self) -> np.ndarray:
        """(K,) int64 false negatives at each threshold."""
        return self.num_gt - self.tp

    @property
    def precision(self) -> np.ndarray:
        """(K,) unrounded precision at each threshold."""
        return precision_recall_f1(self.tp, self.fp, self.fn)[0]

    @property
    def recall(self) -> np.ndarray:
        """(K,) unrounded recall at each threshold."""
        return precision_recall_f1(self.tp, self.fp, self.fn)[1]

    @property
    def f1(self) -> np.ndarray:
        """(K,) unrounded F1 at each threshold."""
        return precision_recall_f1(self.tp, self.fp, self.fn)[2]

    def counts_at(self, threshold):
        """TP, FP and FN when keeping predictions with ``float32(probability) >= threshold``.

        Parameters
        ----------
        threshold : float or array_like of float
            Confidence threshold(s), compared with the float32 confidences.

        Returns
        -------
        tp, fp, fn : int64 ndarray of ``threshold``'s shape
        """
        threshold = np.asarray(threshold, dtype=np.float64)
        kept = np.searchsorted(-self.threshold.astype(np.float64), -threshold, side="right")
        tp = np.where(kept > 0, np.append(self.tp, 0)[kept - 1], 0)
        fp = np.where(kept > 0, np.append(self.fp, 0)[kept - 1], 0)
        return tp, fp, self.num_gt - tp

    def average_precision(self) -> float:
        """Area under the step precision-recall curve: ``sum_k (R_k - R_{k-1}) P_k``.

        Thresholds are visited from the highest down, ``R_{-1} = 0``; precision is not
        interpolated (the definition of scikit-learn's ``average_precision_score``). Recall is
        relative to all ground truth, so GT points never reached cap the AP below 1. A class without
        predictions or ground truth has AP 0.
        """
        precision, recall, _ = precision_recall_f1(self.tp, self.fp, self.fn)
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def best(self) -> dict:
        """The threshold with the highest F1 (the highest such threshold when several tie).

        Returns
        -------
        dict
            ``threshold`` (float, or None without predictions), unrounded ``precision``,
            ``recall``, ``f1``, and the counts ``tp``, ``fp``, ``fn`` there.
        """
        if len(self.threshold) == 0:
            return {
                "threshold": None,
                "precision": 0.0,
                "recall": 0.0,
                "f1": 0.0,
                "tp": 0,
                "fp": 0,
                "fn": self.num_gt,
            }
        precision, recall, f1 = precision_recall_f1(self.tp, self.fp, self.fn)
        k = int(np.argmax(f1))
        return {
            "threshold": float(self.threshold[k]),
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "tp": int(self.tp[k]),
            "fp": int(self.fp[k]),
            "fn": int(self.fn[k]),
        }


def class_curves(
    predictions: PointSet, ground_truth: PointSet, matched
) -> dict[str, ThresholdCurve]:
    """Threshold curve of each class from one matching of all predictions.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        All images' points.
    matched : ndarray of int64, shape (len(predictions),)
        Matched ground-truth row per prediction or -1, as returned by
        :func:`evaluation.matching.match_point_sets` (greedy matching). For an optimal matching
        the curve describes thresholding that one pairing, not re-matching at each threshold.

    Returns
    -------
    dict
        Class name (``"BC"``, ``"TC"``) -> :class:`ThresholdCurve`.
    """
    matched = np.asarray(matched)
    curves = {}
    for label, name in CLASS_NAMES.items():
        of_class = predictions.label == label
        curves[name] = ThresholdCurve.from_matches(
            predictions.probability[of_class],
            matched[of_class] >= 0,
            np.count_nonzero(ground_truth.label == label),
        )
    return curves


def shared_threshold_mf1(curves: dict[str, ThresholdCurve]) -> tuple[np.ndarray, np.ndarray]:
    """mF1 when one threshold applies to every class, at every distinct confidence.

    Parameters
    ----------
    curves : dict
        Class name -> :class:`ThresholdCurve`.

    Returns
    -------
    threshold : ndarray of float32, shape (K,)
        The distinct confidences of all classes, descending.
    mf1 : ndarray of float64, shape (K,)
        Mean over classes of the unrounded F1 at each threshold.
    """
    threshold = np.unique(np.concatenate([curve.threshold for curve in curves.values()]))[::-1]
    f1 = [precision_recall_f1(*curve.counts_at(threshold))[2] for curve in curves.values()]
    return threshold, np.mean(f1, axis=0) if f1 else np.zeros(len(threshold))
