"""The Grand Challenge "Multiple points" document: reading, validating, writing.

Every check follows the organisers' validity rule (each point entry has exactly the keys
``name``, ``point``, ``probability``; ``name`` matches ``image_[0-9]+``; ``point`` is a list of
three ints with x and y in 0..1023 and class 1 or 2; ``probability`` is a float in [0, 1]).
A violation raises :class:`InputError` whose message is one line naming the file, the entry,
the field and the offending value, e.g.
``predictions.json: points[17].point[0]: x must be an integer in 0..1023, got 1024``.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import re
from typing import Any, Literal

import numpy as np

from evaluation.constants import CLASS_NAMES
from evaluation.errors import InputError, preview
from evaluation.limits import current_limits
from evaluation.points import PATCH_COORDINATE_MAX, WHOLE_SLIDE_COORDINATE_MAX, PointSet
from evaluation.strict_json import collector_paused, json_kind, parse_json, read_document_bytes

__all__ = [
    "TYPED_PARSER_MIN_BYTES",
    "Role",
    "check_image_range",
    "points_document",
    "points_from_document",
    "read_points_document",
]

#: Image indices above this cannot be stored as int64 image numbers.
_IMAGE_INDEX_MAX = 2**62
_IMAGE_INDEX_DIGITS = len(str(_IMAGE_INDEX_MAX))

_ENTRY_KEYS = frozenset({"name", "point", "probability"})
_IMAGE_NAME = re.compile(r"image_[0-9]+")

Role = Literal["predictions", "ground_truth"]


def read_points_document(
    path: str | os.PathLike,
    *,
    role: Role = "predictions",
    whole_slide: bool = False,
    num_images: int | None = None,
) -> tuple[PointSet, int | None]:
    """Read and validate a "Multiple points" JSON file.

    Parameters
    ----------
    path : path-like
        The JSON file.
    role : {"predictions", "ground_truth"}
        Ground truth must carry ``num_images`` and every image index must be below it.
    whole_slide : bool
        Lift the 0..1023 pixel bound on x and y (up to ``WHOLE_SLIDE_COORDINATE_MAX``).
    num_images : int, optional
        For predictions: reject image indices >= ``num_images`` while reading.

    Returns
    -------
    points : PointSet
        One row per entry of ``points``, in file order.
    num_images : int or None
        The document's ``num_images`` for ground truth, None for predictions.

    Raises
    ------
    InputError
        The file is unreadable, not JSON, or breaks the validity rule.
    """
    source = str(path)
    coordinate_max = WHOLE_SLIDE_COORDINATE_MAX if whole_slide else PATCH_COORDINATE_MAX
    holder = [read_document_bytes(path)]
    # The collector stays paused until the parsed document is gone: resumed while it lives,
    # its first pass would scan every one of the document's millions of objects.
    with collector_paused():
        if len(holder[0]) >= TYPED_PARSER_MIN_BYTES:
            result = _read_points_typed(holder[0], source, role, coordinate_max, num_images)
            if result is not None:
                points, num_images = result
                _check_points_per_image(points, source, whole_slide)
                return points, num_images
        document = parse_json(holder, source)
        points = points_from_document(
            document, source=source, role=role, whole_slide=whole_slide, num_images=num_images
        )
        del document
    return points


def points_from_document(
    document: Any,
    *,
    source: str,
    role: Role = "predictions",
    whole_slide: bool = False,
    num_images: int | None = None,
) -> tuple[PointSet, int | None]:
    """Validate an already-parsed "Multiple points" document; see :func:`read_points_document`.

    ``source`` names the document in error messages (a file name, or e.g. ``job 3 output``).
    """
    if role not in ("predictions", "ground_truth"):
        raise ValueError(f"role must be 'predictions' or 'ground_truth', got {role!r}")
    if type(document) is not dict:
        raise InputError(
            f'{source}: top level must be a JSON object with a "points" list, '
            f"got {json_kind(document)}"
        )
    if "points" not in document:
        raise InputError(f'{source}: missing key "points" (the list of point entries)')
    entries = document["points"]
    if type(entries) is not list:
        raise InputError(f'{source}: "points" must be a list, got {json_kind(entries)}')
    if role == "ground_truth":
        if "num_images" not in document:
            raise InputError(f'{source}: missing key "num_images" (ground truth must state it)')
        num_images = document["num_images"]
        if type(num_images) is not int or num_images < 0:
            raise InputError(
                f"{source}: num_images must be a non-negative integer, got {preview(num_images)}"
            )
    _check_document_size(source, role, num_images, len(entries))
    coordinate_max = WHOLE_SLIDE_COORDINATE_MAX if whole_slide else PATCH_COORDINATE_MAX
    with collector_paused():
        points = _points_from_entries(entries, source, coordinate_max, num_images)
    _check_points_per_image(points, source, whole_slide)
    return points, (num_images if role == "ground_truth" else None)


def _check_document_size(source: str, role: Role, num_images: int | None, count: int) -> None:
    """The limits on a document's ``num_images`` (ground truth) and number of points."""
    limits = current_limits()
    if role == "ground_truth":
        limits.check("images", num_images, f"{source}: num_images", "images")
    limits.check("points", count, f'{source}: "points"', "points")


def _check_points_per_image(points: PointSet, source: str, whole_slide: bool) -> None:
    """The limit on the points of one image, outside whole-slide mode.

    Matching time and memory grow with the points of one image (a whole slide is one image by
    design, and bounded by the total alone).
    """
    if whole_slide or not len(points):
        return
    images, counts = np.unique(points.image, return_counts=True)
    busiest = int(np.argmax(counts))
    current_limits().check(
        "points_per_image", int(counts[busiest]), f"{source}: image_{images[busiest]}", "points"
    )


# ---------------------------------------------------------------------------------------------
# The typed parser (msgspec)

#: Documents from this size (bytes) go through msgspec's typed decoder first: below it, importing
#: msgspec costs more than it saves (docs/benchmarks.md, "Whole slides").
TYPED_PARSER_MIN_BYTES = 500_000


@functools.cache
def _typed_decoder():
    """msgspec's decoder for the shape of a valid document and its error base (imported here,
    not with the module: small documents never pay for it)."""
    import msgspec

    # An integer probability decodes as an int (a plain float field would convert it), so that
    # it can be refused as the rule requires.
    entry = msgspec.defstruct(
        "Entry",
        [("name", str), ("point", tuple[int, int, int]), ("probability", int | float)],
        forbid_unknown_fields=True,
        gc=False,
    )
    document = msgspec.defstruct(
        "Document",
        [
            ("points", list[entry]),
            ("type", Any, None),
            ("version", Any, None),
            ("num_images", Any, None),
        ],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(document), msgspec.DecodeError


def _read_points_typed(
    raw: bytes, source: str, role: Role, coordinate_max: int, num_images: int | None
) -> tuple[PointSet, int | None] | None:
    """The points of a valid document, decoded straight into typed records, or None.

    None means this path cannot vouch for the document: msgspec refuses it (malformed JSON,
    a missing or unknown key, a wrong type, a number outside 64 bits, another top-level key)
    or an entry breaks the rule. The full path then decides and names the error. Whatever this
    path accepts, the full path accepts with the same values (tests/test_formats_typed.py
    checks both on the same inputs); the size limits raise the same errors on both.
    """
    decode, decode_error = _typed_decoder()
    try:
        document = decode.decode(raw)
    except (decode_error, RecursionError):
        return None
    if role == "ground_truth":
        num_images = document.num_images
        if type(num_images) is not int or num_images < 0:
            return None
    entries = document.points
    count = len(entries)
    _check_document_size(source, role, num_images, count)
    names = list(map(operator.attrgetter("name"), entries))
    try:
        image_of_name = {
            name: _image_index(name, source, num_images) for name in dict.fromkeys(names)
        }
    except InputError:
        return None
    probabilities = list(map(operator.attrgetter("probability"), entries))
    if int in set(map(type, probabilities)):
        return None
    try:
        table = np.fromiter(
            itertools.chain.from_iterable(map(operator.attrgetter("point"), entries)),
            dtype=np.int64,
            count=3 * count,
        ).reshape(count, 3)
    except OverflowError:  # beyond int64, so beyond any bound
        return None
    probability = np.fromiter(probabilities, dtype=np.float64, count=count)
    xy = table[:, :2]
    label = table[:, 2]
    if not (
        np.all((xy >= 0) & (xy <= coordinate_max))
        and np.all((label == 1) | (label == 2))
        and np.all((probability >= 0.0) & (probability <= 1.0))
    ):
        return None
    image = np.fromiter(map(image_of_name.__getitem__, names), dtype=np.int64, count=count)
    return (
        PointSet(image=image, xy=xy.copy(), label=label.copy(), probability=probability),
        num_images if role == "ground_truth" else None,
    )


def _points_from_entries(
    entries: list, source: str, coordinate_max: int, num_images: int | None
) -> PointSet:
    """Validate every entry in one pass and collect its values into flat lists."""
    image_of_name: dict[str, int] = {}
    images: list[int] = []
    coordinates: list[int] = []
    probabilities: list[float] = []
    for index, entry in enumerate(entries):
        # Look the keys up first and check the entry's type after: the fastest order in CPython.
        try:
            name = entry["name"]
            point = entry["point"]
            probability = entry["probability"]
        except (KeyError, TypeError):
            raise InputError(_entry_shape_error(source, index, entry)) from None
        if type(entry) is not dict or len(entry) != len(_ENTRY_KEYS):
            raise InputError(_entry_shape_error(source, index, entry))
        image = image_of_name.get(name) if type(name) is str else None
        if image is None:
            image = _image_index(name, f"{source}: points[{index}].name", num_images)
            image_of_name[name] = image
        if type(point) is not list or len(point) != 3:
            raise InputError(
                f"{source}: points[{index}].point: must be a list [x, y, class] of 3 integers, "
                f"got {preview(point)}"
            )
        x, y, label = point
        if type(x) is not int or not 0 <= x <= coordinate_max:
            raise InputError(_coordinate_error(source, index, 0, "x", x, coordinate_max))
        if type(y) is not int or not 0 <= y <= coordinate_max:
            raise InputError(_coordinate_error(source, index, 1, "y", y, coordinate_max))
        if type(label) is not int or label not in CLASS_NAMES:
            raise InputError(
                f"{source}: points[{index}].point[2]: class must be 1 (BC) or 2 (TC), "
                f"got {preview(label)}"
            )
        if type(probability) is not float or not 0.0 <= probability <= 1.0:
            raise InputError(_probability_error(source, index, probability))
        images.append(image)
        coordinates.extend(point)
        probabilities.append(probability)
    table = np.array(coordinates, dtype=np.int64).reshape(-1, 3)
    return PointSet(
        image=np.array(images, dtype=np.int64),
        xy=table[:, :2].copy(),
        label=table[:, 2].copy(),
        probability=np.array(probabilities, dtype=np.float64),
    )


def _image_index(name: Any, where: str, num_images: int | None) -> int:
    if type(name) is not str or _IMAGE_NAME.fullmatch(name) is None:
        raise InputError(f"{where}: must match image_[0-9]+, got {preview(name)}")
    # The organisers read the index as int(name.split("_")[-1]): image_007 is image 7. Its
    # length is checked first: int() refuses more than 4,300 digits with a ValueError.
    digits = name[len("image_") :].lstrip("0") or "0"
    if len(digits) > _IMAGE_INDEX_DIGITS:
        raise InputError(f"{where}: image index too large, got {preview(name)}")
    image = int(digits)
    if num_images is not None and image >= num_images:
        shown = name if len(name) <= 40 else preview(name)  # leading zeros may make it long
        raise InputError(f"{where}: {shown} is outside the {_images_range(num_images)}")
    if image > _IMAGE_INDEX_MAX:
        raise InputError(f"{where}: image index too large, got {preview(name)}")
    return image


def _images_range(num_images: int) -> str:
    if num_images == 0:
        return "ground truth's 0 images"
    return f"ground truth's {num_images} images (image_0..image_{num_images - 1})"


def check_image_range(points: PointSet, num_images: int, source: str) -> None:
    """Raise :class:`InputError` naming the first point whose image index is >= ``num_images``."""
    outside = np.flatnonzero(points.image >= num_images)
    if outside.size:
        row = int(outside[0])
        raise InputError(
            f"{source}: points[{row}].name: image_{points.image[row]} is outside the "
            f"{_images_range(num_images)}"
        )


def _entry_shape_error(source: str, index: int, entry: Any) -> str:
    where = f"{source}: points[{index}]"
    if type(entry) is not dict:
        return (
            f"{where}: must be an object with keys name, point, probability, got {preview(entry)}"
        )
    missing = sorted(_ENTRY_KEYS - entry.keys())
    if missing:
        return f'{where}: missing key "{missing[0]}", got keys {preview(sorted(entry))}'
    extra = sorted(entry.keys() - _ENTRY_KEYS)
    return (
        f"{where}: unexpected key {preview(extra[0])} (only name, point, probability are allowed), "
        f"got keys {preview(sorted(entry))}"
    )


def _coordinate_error(source: str, index: int, axis: int, axis_name: str, value, limit: int):
    hint = "" if limit == PATCH_COORDINATE_MAX else " (whole-slide mode)"
    return (
        f"{source}: points[{index}].point[{axis}]: {axis_name} must be an integer in 0..{limit}"
        f"{hint}, got {preview(value)}"
    )


def _probability_error(source: str, index: int, value) -> str:
    where = f"{source}: points[{index}].probability"
    if type(value) is int:
        return f"{where}: must be a float in [0, 1] written with a decimal point, got {value}"
    return f"{where}: must be a float in [0, 1], got {preview(value)}"


def points_document(points: PointSet, num_images: int | None = None) -> dict:
    """The "Multiple points" document of ``points`` (plus ``num_images`` for ground truth)."""
    entries = [
        {"name": f"image_{image}", "point": [x, y, label], "probability": probability}
        for image, (x, y), label, probability in zip(
            points.image.tolist(),
            points.xy.tolist(),
            points.label.tolist(),
            points.probability.tolist(),
        )
    ]
    document = {"type": "Multiple points", "points": entries, "version": {"major": 1, "minor": 0}}
    if num_images is not None:
        document["num_images"] = int(num_images)
    return document
