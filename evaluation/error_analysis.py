"""Where a model fails: finding cells against naming them, and each error in its tissue.

Three parts, from the inputs of the score:

* **Detection.** Class-agnostic matching with the leaderboard's greedy rule and radius: all
  predictions of an image are visited together by descending float32 probability, each taking
  the nearest free GT point of any class within the radius. TP, FP, FN, precision, recall, F1.
* **Classification.** The detection step's matches as a confusion of GT class x predicted class,
  and the type accuracy (correct matches / matches), after HoVer-Net's ``compute_stats``.
* **Tissue strata.** Each GT point and each prediction gets the tissue value under it (1
  background, 2 cancer area, 255 unknown; :mod:`evaluation.tissue`). The leaderboard's own
  class-aware matching (the score's, not a second one) is split by stratum: a TP and an FN count
  in the GT point's stratum, an FP in the prediction's. Summed over strata, every count equals
  the leaderboard's count of that class.

Counts are kept per image, so that the bootstrap resamples images as it does for the score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from evaluation.bootstrap import image_draw_blocks, percentile_interval
from evaluation.constants import (
    CLASS_NAMES,
    MATCH_RADIUS_PX,
    TISSUE_BACKGROUND,
    TISSUE_CANCER,
    TISSUE_UNKNOWN,
)
from evaluation.matching import match_greedy, match_point_sets
from evaluation.metrics import EPSILON, class_metrics, precision_recall_f1
from evaluation.points import PointSet
from evaluation.tissue import TissueMaps

__all__ = [
    "RARE_PAIRINGS",
    "STRATA",
    "ErrorCounts",
    "bootstrap_errors",
    "confusion_counts",
    "detection_counts",
    "error_counts",
    "match_any_class",
    "per_organ_summaries",
    "stratum_counts",
    "summarise",
]

#: Tissue strata by name, in report order, and the mask value of each.
STRATA = {"cancer_area": TISSUE_CANCER, "background": TISSUE_BACKGROUND, "unknown": TISSUE_UNKNOWN}
#: The cells unusual for their tissue: (stratum, class) of TC outside the cancer area (in
#: background; unknown tissue is neither inside nor outside) and of BC inside it.
RARE_PAIRINGS = (("background", "TC"), ("cancer_area", "BC"))

# Mask value -> stratum index; the masks hold 1, 2 and 255 only.
_STRATUM_OF_VALUE = np.zeros(256, dtype=np.int64)
for _index, _value in enumerate(STRATA.values()):
    _STRATUM_OF_VALUE[_value] = _index


@dataclass(frozen=True)
class ErrorCounts:
    """Per-image counts of the three parts.

    Attributes
    ----------
    detection : ndarray of int64, shape (N, 3)
        ``[TP, FP, FN]`` of the class-agnostic matching, per image.
    confusion : ndarray of int64, shape (N, C, C)
        ``[image, GT class, predicted class]``: matches of the detection step, classes in
        ``CLASS_NAMES`` order.
    tissue : ndarray of int64, shape (N, S, C, 3), or None
        ``[TP, FP, FN]`` of the leaderboard's matching per image, stratum (``STRATA`` order)
        and class; None without tissue annotations.
    """

    detection: np.ndarray
    confusion: np.ndarray
    tissue: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.detection)

    def of_images(self, selected: np.ndarray) -> ErrorCounts:
        """The counts of some images (a boolean mask or indices)."""
        return ErrorCounts(
            self.detection[selected],
            self.confusion[selected],
            None if self.tissue is None else self.tissue[selected],
        )


def match_any_class(
    predictions: PointSet,
    ground_truth: PointSet,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    matcher=match_greedy,
) -> np.ndarray:
    """The detection step: match predictions to GT points whatever their classes.

    Parameters
    ----------
    predictions, ground_truth : PointSet
    radius_px : float
        Cutoff in pixels (inclusive, float32), as for the score.
    matcher : callable
        The rule for one image (:func:`evaluation.matching.match_greedy`, the leaderboard's).

    Returns
    -------
    ndarray of int64, shape (len(predictions),)
        GT row matched by each prediction, or -1. Each image's predictions are visited in
        ``np.argsort(-float32 probability)`` order over both classes, in file order.
    """
    return match_point_sets(
        _one_class(predictions), _one_class(ground_truth), radius_px=radius_px, matcher=matcher
    )


def _one_class(points: PointSet) -> PointSet:
    return replace(points, label=np.ones_like(points.label))


def detection_counts(
    predictions: PointSet, ground_truth: PointSet, matched_any: np.ndarray, num_images: int
) -> np.ndarray:
    """Per-image ``[TP, FP, FN]`` (N, 3) of the class-agnostic matching ``matched_any``."""
    tp = np.bincount(predictions.image[matched_any >= 0], minlength=num_images)
    fp = np.bincount(predictions.image, minlength=num_images) - tp
    fn = np.bincount(ground_truth.image, minlength=num_images) - tp
    return np.stack([tp, fp, fn], axis=1).astype(np.int64)


def confusion_counts(
    predictions: PointSet, ground_truth: PointSet, matched_any: np.ndarray, num_images: int
) -> np.ndarray:
    """Per-image confusion (N, C, C) ``[image, GT class, predicted class]`` of the matches."""
    classes = len(CLASS_NAMES)
    hit = np.flatnonzero(matched_any >= 0)
    gt_class = ground_truth.label[matched_any[hit]] - 1
    pred_class = predictions.label[hit] - 1
    key = (predictions.image[hit] * classes + gt_class) * classes + pred_class
    return (
        np.bincount(key, minlength=num_images * classes * classes)
        .reshape(num_images, classes, classes)
        .astype(np.int64)
    )


def stratum_counts(
    predictions: PointSet,
    ground_truth: PointSet,
    matched: np.ndarray,
    pred_tissue: np.ndarray,
    gt_tissue: np.ndarray,
    num_images: int,
) -> np.ndarray:
    """Per-image ``[TP, FP, FN]`` (N, S, C, 3) of the leaderboard's matching, by stratum.

    Parameters
    ----------
    predictions, ground_truth : PointSet
    matched : ndarray of int64, shape (len(predictions),)
        The leaderboard's class-aware matching (:attr:`evaluation.ScoreReport.matched`).
    pred_tissue, gt_tissue : ndarray of uint8
        Tissue value (1, 2, 255) under each prediction and each GT point.
    num_images : int

    Returns
    -------
    ndarray of int64, shape (N, len(STRATA), C, 3)
        A TP and an FN count in the GT point's stratum, an FP in the prediction's.
    """
    hit = matched >= 0
    gt_hit = np.zeros(len(ground_truth), dtype=bool)
    gt_hit[matched[hit]] = True
    parts = (  # (image, stratum, class, kind) of every TP, FP and FN
        (predictions.image[hit], gt_tissue[matched[hit]], predictions.label[hit], 0),
        (predictions.image[~hit], pred_tissue[~hit], predictions.label[~hit], 1),
        (ground_truth.image[~gt_hit], gt_tissue[~gt_hit], ground_truth.label[~gt_hit], 2),
    )
    strata, classes = len(STRATA), len(CLASS_NAMES)
    key = np.concatenate(
        [
            ((image * strata + _STRATUM_OF_VALUE[tissue]) * classes + (label - 1)) * 3 + kind
            for image, tissue, label, kind in parts
        ]
    )
    return (
        np.bincount(key, minlength=num_images * strata * classes * 3)
        .reshape(num_images, strata, classes, 3)
        .astype(np.int64)
    )


def error_counts(
    predictions: PointSet,
    ground_truth: PointSet,
    num_images: int,
    *,
    matched: np.ndarray,
    radius_px: float = MATCH_RADIUS_PX,
    tissue: TissueMaps | None = None,
    gt_tissue: np.ndarray | None = None,
    matcher=match_greedy,
) -> ErrorCounts:
    """The three parts' per-image counts.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        Points of images ``0..num_images-1``, as scored.
    num_images : int
    matched : ndarray of int64, shape (len(predictions),)
        The score's class-aware matching; the tissue strata reuse it.
    radius_px : float
        The score's cutoff, for the detection step.
    tissue : TissueMaps, optional
        Tissue of every image; without it there are no strata.
    gt_tissue : ndarray of uint8, optional
        ``tissue.values_at(ground_truth)``, when already known (it is the same for every
        submission of a leaderboard).
    matcher : callable
        The rule of the detection step, the score's.

    Returns
    -------
    ErrorCounts
    """
    matched_any = match_any_class(predictions, ground_truth, radius_px=radius_px, matcher=matcher)
    strata = None
    if tissue is not None:
        if len(tissue) != num_images:
            raise ValueError(f"tissue maps of {len(tissue)} images, but {num_images} images")
        if gt_tissue is None:
            gt_tissue = tissue.values_at(ground_truth)
        strata = stratum_counts(
            predictions, ground_truth, matched, tissue.values_at(predictions), gt_tissue, num_images
        )
    return ErrorCounts(
        detection=detection_counts(predictions, ground_truth, matched_any, num_images),
        confusion=confusion_counts(predictions, ground_truth, matched_any, num_images),
        tissue=strata,
    )


def _counts_entry(tp: int, fp: int, fn: int) -> dict:
    precision, recall, f1 = class_metrics(tp, fp, fn)
    return {
        "TP": int(tp),
        "FP": int(fp),
        "FN": int(fn),
        "precision": precision,
        "recall": recall,
        "F1": f1,
    }


def _accuracy(confusion: np.ndarray) -> np.ndarray:
    """Correct matches / matches over the last two axes (0 without matches, as the F1s)."""
    total = confusion.sum(axis=(-2, -1))
    return np.trace(confusion, axis1=-2, axis2=-1) / (total + EPSILON)


def summarise(counts: ErrorCounts) -> dict:
    """The ``analysis`` document of counts summed over their images.

    Returns
    -------
    dict
        ``detection``: TP, FP, FN, precision, recall, F1; ``classification``: ``confusion``
        (``confusion[gt][predicted]``), ``accuracy``, ``wrong_class`` (the off-diagonal
        matches); ``tissue`` (only with tissue): stratum -> class -> TP, FP, FN, precision,
        recall, F1, and the stratum's ``mF1``. Ratios as the leaderboard's: rounded to 4
        decimals, each stratum's mF1 the mean of its rounded F1s.
    """
    names = list(CLASS_NAMES.values())
    confusion = counts.confusion.sum(axis=0)
    document = {
        "detection": _counts_entry(*counts.detection.sum(axis=0)),
        "classification": {
            "confusion": {
                gt: {predicted: int(confusion[i, j]) for j, predicted in enumerate(names)}
                for i, gt in enumerate(names)
            },
            "accuracy": round(float(_accuracy(confusion)), 4),
            "wrong_class": int(confusion.sum() - np.trace(confusion)),
        },
    }
    if counts.tissue is not None:
        totals = counts.tissue.sum(axis=0)
        document["tissue"] = {}
        for s, stratum in enumerate(STRATA):
            entry = {name: _counts_entry(*totals[s, c]) for c, name in enumerate(names)}
            entry["mF1"] = sum(entry[name]["F1"] for name in names) / len(names)
            document["tissue"][stratum] = entry
    return document


def per_organ_summaries(counts: ErrorCounts, organs: Sequence[str]) -> dict:
    """:func:`summarise` over each organ's images: organ (sorted) -> document, with ``images``."""
    organ_of_image = np.asarray(organs, dtype=object)
    if organ_of_image.shape != (len(counts),):
        raise ValueError(f"organs must name all {len(counts)} images, got {len(organs)}")
    return {
        organ: {
            "images": int(np.sum(organ_of_image == organ)),
            **summarise(counts.of_images(organ_of_image == organ)),
        }
        for organ in sorted(set(organs))
    }


def _interval(estimate: float, replicates: np.ndarray, confidence: float) -> dict:
    low, high = percentile_interval(replicates, confidence)
    return {"estimate": float(estimate), "low": float(low), "high": float(high)}


def _replicate_totals(
    counts: ErrorCounts, replicates: int, seed: int | np.random.SeedSequence
) -> list[np.ndarray | None]:
    """Each replicate's summed counts: ``[detection (R, 3), confusion (R, C, C), tissue
    (R, S, C, 3) or None]``.

    The draws come a block of replicates at a time (:func:`evaluation.bootstrap.image_draw_blocks`),
    so memory holds one block of draws and the R rows of sums, never all R x N draws.
    """
    parts = [counts.detection, counts.confusion]
    if counts.tissue is not None:
        parts.append(counts.tissue)
    # Float64 sums stay exact (integers far below 2**53), and BLAS does the product.
    per_image = np.concatenate([part.reshape(len(counts), -1) for part in parts], axis=1).astype(
        np.float64
    )
    totals = np.concatenate(
        [
            draws.astype(np.float64) @ per_image
            for draws in image_draw_blocks(len(counts), replicates, seed)
        ]
    )
    columns = np.cumsum([part[0].size for part in parts])[:-1]
    sums = [
        block.reshape(replicates, *part.shape[1:])
        for block, part in zip(np.split(totals, columns, axis=1), parts, strict=True)
    ]
    return sums if counts.tissue is not None else [*sums, None]


def bootstrap_errors(
    counts: ErrorCounts,
    *,
    replicates: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.SeedSequence = 0,
) -> dict:
    """Percentile bootstrap intervals over images of the detection F1, the accuracy and each
    stratum's F1 per class and mF1.

    The replicates are those of :func:`evaluation.bootstrap.bootstrap_f1` with the same seed
    (the same images drawn), and the statistics unrounded, as there.

    Returns
    -------
    dict
        ``detection.F1``, ``classification.accuracy``, ``tissue[stratum][class].F1`` and
        ``tissue[stratum].mF1`` (with tissue): each ``{"estimate", "low", "high"}``; plus
        ``images``, ``replicates``, ``confidence``. Without images the bounds are None.
    """
    num_images = len(counts)
    result = {"images": num_images, "replicates": int(replicates), "confidence": float(confidence)}
    if num_images == 0:
        empty = {"estimate": None, "low": None, "high": None}
        result.update({"detection": {"F1": empty}, "classification": {"accuracy": empty}})
        if counts.tissue is not None:
            result["tissue"] = {
                stratum: {**{name: {"F1": empty} for name in CLASS_NAMES.values()}, "mF1": empty}
                for stratum in STRATA
            }
        return result
    detection, confusion, tissue = _replicate_totals(counts, replicates, seed)
    result["detection"] = {
        "F1": _interval(
            precision_recall_f1(*counts.detection.sum(axis=0).tolist())[2],
            precision_recall_f1(detection[:, 0], detection[:, 1], detection[:, 2])[2],
            confidence,
        )
    }
    result["classification"] = {
        "accuracy": _interval(
            _accuracy(counts.confusion.sum(axis=0)), _accuracy(confusion), confidence
        )
    }
    if counts.tissue is not None:
        f1 = precision_recall_f1(*np.moveaxis(counts.tissue.sum(axis=0), -1, 0))[2]
        replicate_f1 = precision_recall_f1(*np.moveaxis(tissue, -1, 0))[2]
        result["tissue"] = {}
        for s, stratum in enumerate(STRATA):
            entry = {
                name: {"F1": _interval(f1[s, c], replicate_f1[:, s, c], confidence)}
                for c, name in enumerate(CLASS_NAMES.values())
            }
            entry["mF1"] = _interval(f1[s].mean(), replicate_f1[:, s].mean(axis=-1), confidence)
            result["tissue"][stratum] = entry
    return result
