"""Counts and metrics of the OCELOT 2023 leaderboard: per class, per image, per organ."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from evaluation.constants import CLASS_NAMES, MATCH_RADIUS_PX
from evaluation.matching import match_greedy, match_point_sets
from evaluation.multiple_points import check_image_range, points_from_document
from evaluation.points import PointSet

__all__ = [
    "COUNT_KEYS",
    "EPSILON",
    "MATCHING_RULES",
    "PUBLISHED_KEYS",
    "ScoreReport",
    "class_metrics",
    "count_matches",
    "matcher",
    "metrics_from_counts",
    "precision_recall_f1",
    "score",
    "score_documents",
]

#: The seven numbers the leaderboard publishes, in its order.
PUBLISHED_KEYS = ("Pre/BC", "Rec/BC", "F1/BC", "Pre/TC", "Rec/TC", "F1/TC", "mF1")
#: Integer counts reported beside them.
COUNT_KEYS = ("TP/BC", "FP/BC", "FN/BC", "TP/TC", "FP/TC", "FN/TC")

#: The organisers' guard against division by zero, in every ratio.
EPSILON = 1e-7

#: Matching rules by name: the challenge's greedy rule, and the optimal pairing for research.
MATCHING_RULES = ("greedy", "hungarian")


def matcher(matching: str) -> Callable:
    """The matching function of a rule; the Hungarian one (and scipy.optimize) loads on demand."""
    if matching == "greedy":
        return match_greedy
    if matching == "hungarian":
        from evaluation.hungarian import match_hungarian

        return match_hungarian
    raise ValueError(f"matching must be one of {', '.join(MATCHING_RULES)}, got {matching!r}")


@dataclass(frozen=True)
class ScoreReport:
    """What :func:`score` returns.

    Attributes
    ----------
    aggregates : dict
        ``PUBLISHED_KEYS`` (floats, exactly as the organisers compute them) and ``COUNT_KEYS``
        (ints), over all images.
    results : list of dict
        One per image ``image_k`` in index order: ``name``, the ``COUNT_KEYS``, ``F1/BC``,
        ``F1/TC`` (and ``organ`` when organs are known).
    per_organ : dict or None
        Organ -> ``PUBLISHED_KEYS`` + ``COUNT_KEYS`` + ``images`` (how many), micro-averaged
        over that organ's images; None when organs are unknown.
    matched : ndarray of int64, shape (P,), or None
        The matching behind the counts: ground-truth row matched by each prediction, or -1.
    counts : dict or None
        ``COUNT_KEYS`` -> ndarray of int64, shape (num_images,): the per-image counts.
    """

    aggregates: dict
    results: list
    per_organ: dict | None = None
    matched: np.ndarray | None = field(default=None, repr=False, compare=False)
    counts: dict | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The ``metrics.json`` document (``per_organ`` only when organs are known)."""
        document = {"aggregates": self.aggregates, "results": self.results}
        if self.per_organ is not None:
            document["per_organ"] = self.per_organ
        return document


def precision_recall_f1(tp, fp, fn):
    """Unrounded precision, recall and F1 of the OCELOT formula, element-wise.

    Parameters
    ----------
    tp, fp, fn : int or array_like of int
        Counts of true positives, false positives and false negatives (matching shapes).

    Returns
    -------
    precision, recall, f1 : float or ndarray of float64
        ``TP / (TP + FP + 1e-7)``, ``TP / (TP + FN + 1e-7)`` and ``2 P R / (P + R + 1e-7)``.

    Examples
    --------
    >>> precision_recall_f1(3, 1, 0)[0]
    0.7499999812500004
    """
    if not all(isinstance(count, int) for count in (tp, fp, fn)):
        tp, fp, fn = (np.asarray(count, dtype=np.float64) for count in (tp, fp, fn))
    precision = tp / (tp + fp + EPSILON)
    recall = tp / (tp + fn + EPSILON)
    f1 = 2 * precision * recall / (precision + recall + EPSILON)
    return precision, recall, f1


def class_metrics(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 of one class, each rounded to 4 decimals as the organisers do.

    The rounding is Python's ``round`` of the unrounded values of :func:`precision_recall_f1`.
    """
    precision, recall, f1 = precision_recall_f1(int(tp), int(fp), int(fn))
    return round(precision, 4), round(recall, 4), round(f1, 4)


def metrics_from_counts(counts: dict) -> dict:
    """The published keys, then the counts, from a dict holding ``COUNT_KEYS``.

    ``mF1`` is the mean of the rounded per-class F1 and is itself not rounded (the organisers
    publish e.g. 0.55945).
    """
    metrics = {}
    for name in CLASS_NAMES.values():
        precision, recall, f1 = class_metrics(
            counts[f"TP/{name}"], counts[f"FP/{name}"], counts[f"FN/{name}"]
        )
        metrics.update({f"Pre/{name}": precision, f"Rec/{name}": recall, f"F1/{name}": f1})
    metrics["mF1"] = sum(metrics[f"F1/{name}"] for name in CLASS_NAMES.values()) / len(CLASS_NAMES)
    metrics.update({key: int(counts[key]) for key in COUNT_KEYS})
    return metrics


def count_matches(
    predictions: PointSet, ground_truth: PointSet, matched: np.ndarray, num_images: int
) -> dict[str, np.ndarray]:
    """Per-image TP/FP/FN of each class.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        Points whose image indices lie in ``0..num_images-1``.
    matched : ndarray of int64, shape (len(predictions),)
        Matched GT row per prediction or -1, as :func:`evaluation.matching.match_point_sets`.
    num_images : int

    Returns
    -------
    dict
        ``COUNT_KEYS`` -> ndarray of int64, shape (num_images,).
    """
    counts = {}
    for label, name in CLASS_NAMES.items():
        is_pred = predictions.label == label
        num_pred = np.bincount(predictions.image[is_pred], minlength=num_images)
        tp = np.bincount(predictions.image[is_pred & (matched >= 0)], minlength=num_images)
        num_gt = np.bincount(ground_truth.image[ground_truth.label == label], minlength=num_images)
        counts[f"TP/{name}"] = tp
        counts[f"FP/{name}"] = num_pred - tp
        counts[f"FN/{name}"] = num_gt - tp
    return counts


def score(
    predictions: PointSet,
    ground_truth: PointSet,
    num_images: int,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    organs: Sequence[str] | None = None,
    matching: str = "greedy",
) -> ScoreReport:
    """Score predictions against ground truth with the OCELOT 2023 rule.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        Points of images ``0..num_images-1``, rows in file order.
    num_images : int
        Number of images (the GT document's ``num_images``); images without points count too.
    radius_px : float
        Matching cutoff in pixels (inclusive); 15 px = 3 µm at 0.2 µm/px.
    organs : sequence of str, optional
        Organ of each image, length ``num_images``; enables ``per_organ``.
    matching : {"greedy", "hungarian"}
        ``"greedy"`` is the challenge's rule; ``"hungarian"`` pairs optimally (most pairs within
        the radius, then least total distance), for comparison with point-detection papers.

    Returns
    -------
    ScoreReport

    Raises
    ------
    InputError
        A point names an image >= ``num_images``.
    """
    if organs is not None and len(organs) != num_images:
        raise ValueError(f"organs must name all {num_images} images, got {len(organs)}")
    check_image_range(predictions, num_images, "predictions")
    check_image_range(ground_truth, num_images, "ground truth")
    matched = match_point_sets(
        predictions, ground_truth, radius_px=radius_px, matcher=matcher(matching)
    )
    counts = count_matches(predictions, ground_truth, matched, num_images)
    aggregates = metrics_from_counts({key: values.sum() for key, values in counts.items()})
    results = _per_image_results(counts, num_images, organs)
    per_organ = None if organs is None else _per_organ_metrics(counts, organs)
    return ScoreReport(
        aggregates=aggregates, results=results, per_organ=per_organ, matched=matched, counts=counts
    )


def score_documents(
    predictions: dict,
    ground_truth: dict,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    organs: Sequence[str] | None = None,
    whole_slide: bool = False,
    predictions_source: str = "predictions",
    ground_truth_source: str = "ground truth",
) -> ScoreReport:
    """Validate two parsed "Multiple points" documents and :func:`score` them.

    ``ground_truth`` must carry ``num_images``. The ``*_source`` names start any
    :class:`~evaluation.errors.InputError` message.
    """
    truth, num_images = points_from_document(
        ground_truth, source=ground_truth_source, role="ground_truth", whole_slide=whole_slide
    )
    predicted, _ = points_from_document(
        predictions, source=predictions_source, whole_slide=whole_slide, num_images=num_images
    )
    return score(predicted, truth, num_images, radius_px=radius_px, organs=organs)


def _per_image_results(counts: dict, num_images: int, organs: Sequence[str] | None) -> list:
    columns = {key: values.tolist() for key, values in counts.items()}
    results = []
    for image in range(num_images):
        image_counts = {key: columns[key][image] for key in COUNT_KEYS}
        result = {"name": f"image_{image}", **image_counts}
        for name in CLASS_NAMES.values():
            result[f"F1/{name}"] = class_metrics(
                image_counts[f"TP/{name}"], image_counts[f"FP/{name}"], image_counts[f"FN/{name}"]
            )[2]
        if organs is not None:
            result["organ"] = organs[image]
        results.append(result)
    return results


def _per_organ_metrics(counts: dict, organs: Sequence[str]) -> dict:
    organ_of_image = np.asarray(organs, dtype=object)
    per_organ = {}
    for organ in sorted(set(organs)):
        of_organ = organ_of_image == organ
        organ_counts = {key: values[of_organ].sum() for key, values in counts.items()}
        per_organ[organ] = {**metrics_from_counts(organ_counts), "images": int(of_organ.sum())}
    return per_organ
