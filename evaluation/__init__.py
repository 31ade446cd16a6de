"""The OCELOT 2023 foundation: formats, layouts, constants, errors, scoring and report.

Importing it needs numpy and scipy only; image reading (``evaluation.images``,
``evaluation.stacked``, ``evaluation.release`` images) needs the ``images`` extra and the report
the ``report`` extra, each imported where it is used. This package never imports torch, and
never imports ``baseline_algorithm``.
"""

from evaluation.errors import DataError, InputError, OcelotError
from evaluation.files import write_json_atomic
from evaluation.matching import match_greedy, match_point_sets
from evaluation.metrics import ScoreReport, class_metrics, score, score_documents
from evaluation.multiple_points import (
    check_image_range,
    points_document,
    points_from_document,
    read_points_document,
)
from evaluation.points import PointSet
from evaluation.strict_json import read_json_document

__all__ = [
    "DataError",
    "InputError",
    "OcelotError",
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
