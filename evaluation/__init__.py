"""Standalone OCELOT scorer: formats, validation, matching, metrics and CLI.

This package never imports torch.
"""

from evaluation.formats import (
    InputError,
    PointSet,
    check_image_range,
    points_document,
    points_from_document,
    read_json_document,
    read_points_document,
    write_json_atomic,
)
from evaluation.matching import match_greedy, match_point_sets
from evaluation.metrics import ScoreReport, class_metrics, score, score_documents

__all__ = [
    "InputError",
    "PointSet",
    "ScoreReport",
    "check_image_range",
    "class_metrics",
    "match_greedy",
    "match_point_sets",
    "points_document",
    "points_from_document",
    "read_json_document",
    "read_points_document",
    "score",
    "score_documents",
    "write_json_atomic",
]
