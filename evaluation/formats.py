"""The Grand Challenge "Multiple points" document: reading, validating, writing.

Every check follows the organisers' validity rule (each point entry has exactly the keys
``name``, ``point``, ``probability``; ``name`` matches ``image_[0-9]+``; ``point`` is a list of
three ints with x and y in 0..1023 and class 1 or 2; ``probability`` is a float in [0, 1]).
A violation raises :class:`InputError` whose message is one line naming the file, the entry,
the field and the offending value, e.g.
``predictions.json: points[17].point[0]: x must be an integer in 0..1023, got 1024``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import itertools
import json
import math
import operator
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evaluation.constants import CLASS_NAMES, PATCH_SIZE_PX
from evaluation.errors import InputError, preview
from evaluation.limits import current_limits

__all__ = [
    "PATCH_COORDINATE_MAX",
    "WHOLE_SLIDE_COORDINATE_MAX",
    "PointSet",
    "check_image_range",
    "check_output_set",
    "check_writable",
    "json_kind",
    "points_document",
    "points_from_document",
    "read_json_document",
    "read_points_document",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_output_set",
]

#: Largest x or y (pixels) the organisers accept: cell patches are 1024 x 1024.
PATCH_COORDINATE_MAX = PATCH_SIZE_PX - 1

#: Largest x or y (pixels) in whole-slide mode: float32, in which distances are computed,
#: represents every integer only up to 2**24.
WHOLE_SLIDE_COORDINATE_MAX = 2**24 - 1

#: Image indices above this cannot be stored as int64 image numbers.
_IMAGE_INDEX_MAX = 2**62
_IMAGE_INDEX_DIGITS = len(str(_IMAGE_INDEX_MAX))

_ENTRY_KEYS = frozenset({"name", "point", "probability"})
_IMAGE_NAME = re.compile(r"image_[0-9]+")

Role = Literal["predictions", "ground_truth"]


@dataclass(frozen=True)
class PointSet:
    """Points of many images, one row per point, in file order.

    Attributes
    ----------
    image : ndarray of int64, shape (N,)
        Image index ``k`` of the entry's name ``image_k``.
    xy : ndarray of int64, shape (N, 2)
        Pixel coordinates (x, y).
    label : ndarray of int64, shape (N,)
        Class: 1 = BC (background cell), 2 = TC (tumour cell).
    probability : ndarray of float64, shape (N,)
        Confidence as given (1.0 for ground truth).
    """

    image: np.ndarray
    xy: np.ndarray
    label: np.ndarray
    probability: np.ndarray

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        if (
            self.image.shape != (n,)
            or self.xy.shape != (n, 2)
            or self.label.shape != (n,)
            or self.probability.shape != (n,)
        ):
            raise ValueError(
                "PointSet arrays must have shapes (N,), (N, 2), (N,), (N,); got "
                f"{self.image.shape}, {self.xy.shape}, {self.label.shape}, {self.probability.shape}"
            )

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @classmethod
    def empty(cls) -> PointSet:
        """A point set without points."""
        return cls.from_arrays(np.zeros(0), np.zeros((0, 2)), np.zeros(0), np.zeros(0))

    @classmethod
    def from_arrays(cls, image, xy, label, probability) -> PointSet:
        """Build a point set from array-likes, checking dtypes and values.

        Parameters
        ----------
        image : array_like of int, shape (N,)
            Image index of each point, >= 0.
        xy : array_like of int, shape (N, 2)
            Pixel coordinates (x, y), >= 0.
        label : array_like of int, shape (N,)
            1 (BC) or 2 (TC).
        probability : array_like of float, shape (N,)
            Values in [0, 1].
        """
        image = _integer_array(image, "image")
        xy = _integer_array(xy, "xy")
        if xy.size == 0:
            xy = xy.reshape(0, 2)
        label = _integer_array(label, "label")
        probability = np.asarray(probability, dtype=np.float64)
        if np.any(image < 0):
            raise ValueError("image indices must be >= 0")
        if np.any(xy < 0):
            raise ValueError("coordinates must be >= 0")
        if not np.all((label == 1) | (label == 2)):
            raise ValueError("labels must be 1 (BC) or 2 (TC)")
        if not np.all((probability >= 0.0) & (probability <= 1.0)):
            raise ValueError("probabilities must lie in [0, 1]")
        return cls(image=image, xy=xy, label=label, probability=probability)

    @classmethod
    def concatenate(cls, sets: Sequence[PointSet]) -> PointSet:
        """The points of ``sets`` one after the other, in order."""
        if not sets:
            return cls.empty()
        return cls(*(np.concatenate([getattr(points, name) for points in sets])
                     for name in ("image", "xy", "label", "probability")))

    def take(self, rows) -> PointSet:
        """The points at ``rows`` (indices or boolean mask), in that order."""
        return PointSet(self.image[rows], self.xy[rows], self.label[rows], self.probability[rows])


def _integer_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Reading


def read_json_document(path: str | os.PathLike) -> Any:
    """Parse a JSON file strictly, turning every failure into a one-line :class:`InputError`.

    Strict means: a regular file within the document-size bound
    (:mod:`evaluation.limits`), UTF-8 only, no ``NaN``/``Infinity`` literals and no integer
    too long to convert (both named by their entry), and nesting deep enough to exhaust the
    parser is an error, not a crash.
    """
    holder = [_read_document_bytes(path)]
    with collector_paused():
        return _parse_json(holder, str(path))


def _read_document_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a regular, non-empty file within the document-size bound."""
    source = str(path)
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            # A device or a pipe could be read forever (/dev/zero) or block (a FIFO).
            raise InputError(f"{source}: not a regular file")
        current_limits().check("document_mb", math.ceil(status.st_size / 1e6), source,
                               "MB of JSON")
        raw = Path(path).read_bytes()
    except OSError as error:
        raise InputError(f"{source}: cannot read file: {error.strerror or error}") from None
    if not raw or raw.isspace():  # isspace stops at the first other byte; strip would copy
        raise InputError(f"{source}: file is empty, expected a JSON object")
    return raw


def _parse_json(holder: list[bytes], source: str) -> Any:
    """Parse the document in ``holder`` (a one-item list, emptied when the standard parser
    takes over: the text alone stays in memory, not the bytes too)."""
    raw = holder[0]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{source}: not UTF-8 text: byte 0x{raw[error.start]:02x} at offset {error.start}"
        ) from None
    holder.clear()
    del raw
    return _parse_standard(text, source)


def _parse_standard(text: str, source: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (_NonFiniteLiteral, ValueError) as error:
        if isinstance(error, json.JSONDecodeError):
            raise InputError(_invalid_json_message(source, error)) from None
    except RecursionError:
        raise InputError(f"{source}: not valid JSON: nesting too deep to parse") from None
    # NaN/Infinity, or an integer longer than Python converts: parse again, keeping a marker in
    # its place, to name the entry that holds it. The parser stopped at that number, so the
    # text after it may still be malformed, or too deep.
    try:
        document = json.loads(text, parse_int=_parse_integer, parse_constant=_mark_constant,
                              object_pairs_hook=_Members)
    except json.JSONDecodeError as error:
        raise InputError(_invalid_json_message(source, error)) from None
    except RecursionError:
        raise InputError(f"{source}: not valid JSON: nesting too deep to parse") from None
    raise InputError(_unrepresentable_number_message(document, source))


def _invalid_json_message(source: str, error: json.JSONDecodeError) -> str:
    return f"{source}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the garbage collector: parsing creates millions of objects that are no garbage,
    and the collector would scan them again and again (half of a large parse's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _NonFiniteLiteral(Exception):
    pass


def _reject_constant(literal: str):
    raise _NonFiniteLiteral(literal)


class _Unrepresentable:
    """Stands in for a number JSON or Python cannot hold, so that its entry can be named."""

    def __init__(self, description: str):
        self.description = description


def _parse_integer(digits: str) -> int | _Unrepresentable:
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        return _Unrepresentable(f"an integer of {len(digits.lstrip('-'))} digits is too long")
    return int(digits)


def _member_path(where: str, key: str) -> str:
    """``where.key`` for a plain key; ``where["k\\n..."]`` (escaped, shortened) otherwise."""
    if key.isidentifier() and key.isascii() and len(key) <= 40:
        return f"{where}.{key}" if where else key
    return f"{where}[{preview(key)}]"


class _Members(list):
    """An object's (key, value) pairs, duplicated keys kept: the number may be in a value a
    later duplicate replaces."""


def _mark_constant(literal: str) -> _Unrepresentable:
    return _Unrepresentable(f"{literal} is not allowed (JSON numbers are finite)")


def _unrepresentable_number_message(document: Any, source: str) -> str:
    """Name the first entry of ``document`` that holds an :class:`_Unrepresentable` marker."""
    # Depth-first in document order, without recursion (the nesting may be deep).
    stack = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, _Unrepresentable):
            return f"{source}: {where or 'top level'}: {value.description}"
        if type(value) is _Members:
            children = [(_member_path(where, key), item) for key, item in value]
        elif type(value) is list:
            children = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    raise AssertionError("no unrepresentable number found after the parser reported one")


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
    holder = [_read_document_bytes(path)]
    # The collector stays paused until the parsed document is gone: resumed while it lives,
    # its first pass would scan every one of the document's millions of objects.
    with collector_paused():
        if len(holder[0]) >= TYPED_PARSER_MIN_BYTES:
            result = _read_points_typed(holder[0], source, role, coordinate_max, num_images)
            if result is not None:
                points, num_images = result
                _check_points_per_image(points, source, whole_slide)
                return points, num_images
        document = _parse_json(holder, source)
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
    current_limits().check("points_per_image", int(counts[busiest]),
                           f"{source}: image_{images[busiest]}", "points")


# ---------------------------------------------------------------------------------------------
# The typed parser (msgspec)

#: Documents from this size (bytes) go through msgspec's typed decoder first: below it, importing
#: msgspec (about 35 ms) costs more than it saves.
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
        forbid_unknown_fields=True, gc=False,
    )
    document = msgspec.defstruct(
        "Document",
        [("points", list[entry]), ("type", Any, None), ("version", Any, None),
         ("num_images", Any, None)],
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
        image_of_name = {name: _image_index(name, source, num_images)
                         for name in dict.fromkeys(names)}
    except InputError:
        return None
    probabilities = list(map(operator.attrgetter("probability"), entries))
    if int in set(map(type, probabilities)):
        return None
    try:
        table = np.fromiter(
            itertools.chain.from_iterable(map(operator.attrgetter("point"), entries)),
            dtype=np.int64, count=3 * count,
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
    return (PointSet(image=image, xy=xy.copy(), label=label.copy(), probability=probability),
            num_images if role == "ground_truth" else None)


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
    digits = name[len("image_"):].lstrip("0") or "0"
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
            f"{where}: must be an object with keys name, point, probability, "
            f"got {preview(entry)}"
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


def json_kind(value: Any) -> str:
    """What kind of JSON value ``value`` is, in words: "an object", "a list", "null"..."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------
# Writing


def points_document(points: PointSet, num_images: int | None = None) -> dict:
    """The "Multiple points" document of ``points`` (plus ``num_images`` for ground truth)."""
    entries = [
        {"name": f"image_{image}", "point": [x, y, label], "probability": probability}
        for image, (x, y), label, probability in zip(
            points.image.tolist(), points.xy.tolist(), points.label.tolist(),
            points.probability.tolist(),
        )
    ]
    document = {"type": "Multiple points", "points": entries, "version": {"major": 1, "minor": 0}}
    if num_images is not None:
        document["num_images"] = int(num_images)
    return document


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON so that ``path`` either keeps its old content or holds all of it.

    The document goes to a temporary file in the same folder, which then replaces ``path``.
    """
    write_bytes_atomic(path, (json.dumps(obj, allow_nan=False) + "\n").encode("utf-8"))


def check_writable(path: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = ()) -> None:
    """Fail before any work when ``path`` cannot or must not be written.

    Refused: a folder that does not exist or is not writable, a target that exists and is not a
    regular file (a folder, a symlink, a device: never replaced), and a target that is one of
    ``inputs`` (it would overwrite what is being read).

    Raises
    ------
    InputError
    """
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"{target}: cannot write: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{target}: cannot write: folder {folder} is not writable "
                         f"by uid {os.getuid()}")
    _check_replaceable(target)
    _check_not_an_input(target, inputs)


def _check_not_an_input(target: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Refuse ``target`` when it is one of ``inputs``: the same resolved path, or the same file
    (a hard link)."""
    resolved = target.resolve()
    for source in inputs:
        if Path(source).resolve() == resolved or (
                target.exists() and Path(source).exists() and os.path.samefile(source, target)):
            raise InputError(f"{target}: is also an input ({source}); write the output elsewhere")


def check_output_set(folder: str | os.PathLike, names: Sequence[str], *,
                     inputs: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Fail before any work when one file of an output set cannot or must not be written.

    ``folder`` may not exist yet (it is then created when the set is written). Each target
    ``folder/name`` is refused as :func:`check_writable` refuses a file: not a regular file when
    it exists (a link, a folder), or one of ``inputs``.

    Returns
    -------
    list of Path
        The targets, in the order of ``names``.

    Raises
    ------
    InputError
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    targets = [folder / name for name in names]
    for target in targets:
        if folder.is_dir():
            check_writable(target, inputs=inputs)
        else:
            _check_not_an_input(target, inputs)
    return targets


def write_output_set(folder: str | os.PathLike, contents: dict[str, bytes | None], *,
                     inputs: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Write the files of one output set into ``folder`` (created if missing) as one unit.

    Every target is checked (:func:`check_output_set`) before any is written; the files are
    written into a temporary folder inside ``folder`` and then renamed into place. The check
    and the renames run under an exclusive lock on ``folder``, so two runs sharing it leave one
    run's set, never a mix of both.

    Parameters
    ----------
    folder : path-like
    contents : dict
        File name -> its bytes, or None for a file of the set this run does not write: an older
        one is removed, so that it is not read beside the new ones.
    inputs : sequence of path-like
        Files the set must not replace.

    Returns
    -------
    list of Path
        The files written.
    """
    folder = Path(folder)
    check_output_set(folder, list(contents), inputs=inputs)
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        check_output_set(folder, list(contents), inputs=inputs)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".staging-"))
        try:
            written = []
            for name, data in contents.items():
                if data is not None:
                    _write_new_file(staging / name, data)
            for name, data in contents.items():
                if data is None:
                    (folder / name).unlink(missing_ok=True)
                    continue
                os.replace(staging / name, folder / name)
                written.append(folder / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.close(descriptor)  # releases the lock
    return written


def _write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file with the permissions ``open()`` gives."""
    try:
        with open(path, "xb") as stream:
            stream.write(data)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path.parent.parent / path.name)) from None


def _check_replaceable(target: Path) -> None:
    try:
        status = os.lstat(target)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(status.st_mode):
        kind = ("a folder" if stat.S_ISDIR(status.st_mode)
                else "a symbolic link" if stat.S_ISLNK(status.st_mode) else "not a regular file")
        raise InputError(f"{target}: exists and is {kind}; only a regular file is replaced")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` so that ``path`` either keeps its old content or holds all of it.

    The bytes go to a temporary file in the same folder, which then replaces ``path``; the
    temporary file is removed on any failure, SIGINT and (under
    :func:`evaluation.errors.run_reporting_errors`) SIGTERM included. A ``path`` that exists and
    is not a regular file is never replaced (:class:`InputError`). An ``OSError`` (disk full,
    permissions) names ``path``, not the temporary file.
    """
    target = Path(path)
    _check_replaceable(target)
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(target)) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            # mkstemp creates the file private (0600); give it the permissions open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(stream.fileno(), 0o666 & ~umask)
            stream.write(data)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror, str(target)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
