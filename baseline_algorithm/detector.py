"""The detector interface: any model that turns a pair into cell points can be the submission.

A *detector* is a callable ``detect(pair)`` that returns the pair's cells:

``pair``
    A :class:`~evaluation.pairs.Pair` as the Grand Challenge input reader yields it:
    ``cell_image`` (uint8, H x W x 3), ``tissue_image`` (uint8, Ht x Wt x 3), ``meta`` (the
    metadata entry, with ``organ`` and the ``mpp`` fields), ``cell_box`` (the cell patch in
    tissue-patch pixels), ``name`` (``image_k``); no annotations.
returned cells
    Either a numeric array of shape (N, 4) with columns ``x, y, cls, probability`` (the fast
    path: it is checked as a whole), or an iterable of ``(x, y, cls, probability)`` tuples.
``x, y``
    Cell-patch pixels (any real number; written rounded to the nearest integer, halves to even
    as Python's ``round``).
``cls``
    1 = BC (background cell), 2 = TC (tumour cell).
``probability``
    The confidence, in [0, 1].

A detector may also have:

``detect_batch(pairs)`` and ``batch_size``
    Batching, opt-in: one result per pair, in order; ``batch_size`` is the number of pairs per
    call unless ``--batch-size`` says otherwise.
``describe()``
    One line saying what runs (model, weights, settings), logged when ``predict`` starts.

A *factory* ``FACTORY()`` builds the detector once. If its signature has a ``device`` parameter
it receives ``"cpu"`` or ``"cuda"``; if it has a ``checkpoint`` parameter it receives the path
given with ``--checkpoint`` or ``$OCELOT_CHECKPOINT`` (when one is given; otherwise the factory's
own default applies); if it has a ``precision`` parameter it receives ``"float32"``,
``"bfloat16"`` or ``"float16"``, resolved by :mod:`baseline_algorithm.runtime` (a factory without
one keeps its own arithmetic); if it has a ``tta`` parameter it receives ``"none"``, ``"flips"``
or ``"d4"`` (``predict --tta``; asking a factory without it for more than ``none`` is an error).
:mod:`baseline_algorithm.tta` averages any detector's class maps over those views.
An :class:`~evaluation.errors.OcelotError` raised by a detector is reported as one line, like the
toolkit's own; any other exception keeps the traceback of the participant's code.

:func:`load_detector` imports ``MODULE:FACTORY`` and builds it; :func:`validated_points` checks a
pair's points against the organisers' validity rule (the scorer's own reader,
:func:`evaluation.multiple_points.points_from_document`) before anything is written.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from evaluation import InputError, PointSet, points_from_document
from evaluation.errors import OcelotError, preview
from evaluation.limits import current_limits
from evaluation.pairs import Pair
from evaluation.points import PATCH_COORDINATE_MAX

__all__ = [
    "BASELINE_DETECTOR",
    "BatchDetector",
    "Detector",
    "DetectorError",
    "DetectorFailure",
    "LoadedDetector",
    "load_detector",
    "resolve_factory",
    "validated_points",
]

#: The Pred-to-inter-2 baseline, one implementation of the interface among others.
BASELINE_DETECTOR = "baseline_algorithm.inference:baseline_detector"

Point = tuple[float, float, int, float]
#: What a detector returns for one pair: an (N, 4) array or ``(x, y, cls, probability)`` tuples.
Cells = np.ndarray | Iterable[Point]


@runtime_checkable
class Detector(Protocol):
    """``detect(pair)``: the cells of one pair (see the module's description)."""

    def __call__(self, pair: Pair) -> Cells: ...


@runtime_checkable
class BatchDetector(Detector, Protocol):
    """A detector that also takes several pairs per call (for instance one GPU batch).

    Attributes
    ----------
    batch_size : int
        Pairs per :meth:`detect_batch` call unless ``--batch-size`` says otherwise.
    """

    batch_size: int

    def detect_batch(self, pairs: Sequence[Pair]) -> Sequence[Cells]: ...


class DetectorError(OcelotError, ValueError):
    """The detector cannot be loaded or broke the interface; one line naming it and the problem."""


class DetectorFailure(OcelotError):
    """The participant's own code raised an exception.

    ``str(error)`` is the one summary line; :attr:`participant_traceback` is the traceback of
    their code (the frames of this package that called it are left out), to print before it.
    """

    def __init__(self, summary: str, participant_traceback: str):
        super().__init__(summary)
        self.participant_traceback = participant_traceback


def participant_traceback(error: BaseException) -> str:
    """The traceback of ``error`` from the first frame below the caller that caught it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__.tb_next))


def _failure(spec: str, what: str, error: Exception) -> DetectorFailure:
    message = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
    return DetectorFailure(
        f"detector {spec} {what}: {reason} (its traceback is above)", participant_traceback(error)
    )


@dataclass
class LoadedDetector:
    """A built detector and how to call it.

    Attributes
    ----------
    spec : str
        ``MODULE:FACTORY`` as given, naming the detector in messages.
    detect : callable
        ``detect(pair) -> iterable of points``.
    batch_size : int
        Pairs per call; above 1 only for a detector with ``detect_batch``.
    precision : str or None
        The precision handed to the factory; None when the factory takes none.
    """

    spec: str
    detect: Callable[[Pair], Cells]
    batch_size: int = 1
    precision: str | None = None

    @property
    def batches(self) -> bool:
        return hasattr(self.detect, "detect_batch")

    def description(self) -> str:
        """The detector's own ``describe()`` line, or its spec when it has none."""
        describe = getattr(self.detect, "describe", None)
        if not callable(describe):
            return self.spec
        try:
            return f"{self.spec} ({describe()})"
        except OcelotError:
            raise
        except Exception as error:
            raise _failure(self.spec, "raised in describe()", error) from error

    def detect_pairs(self, pairs: Sequence[Pair]) -> list[Any]:
        """Each pair's raw points, through ``detect_batch`` when the detector has it.

        Raises
        ------
        DetectorFailure
            The detector raised; the traceback of its code is kept.
        DetectorError
            ``detect_batch`` returned a number of results other than the number of pairs.
        """
        names = ", ".join(pair.name for pair in pairs)
        try:
            if self.batches:
                results = list(self.detect.detect_batch(list(pairs)))
            else:
                # A loop, not a comprehension: its frame would show in the participant's traceback.
                results = []
                for pair in pairs:
                    results.append(self.detect(pair))
        except OcelotError:
            raise  # already one line saying what to fix
        except Exception as error:
            raise _failure(self.spec, f"raised on {names}", error) from error
        if len(results) != len(pairs):
            raise DetectorError(
                f"detector {self.spec}: detect_batch returned {len(results)} results "
                f"for {len(pairs)} pairs ({names})"
            )
        return results


def load_detector(
    spec: str,
    *,
    device: str = "cpu",
    checkpoint: Path | None = None,
    batch_size: int | None = None,
    precision: str | None = None,
    tta: str | None = None,
) -> LoadedDetector:
    """Import ``MODULE:FACTORY``, call the factory once, return the detector ready to call.

    Parameters
    ----------
    spec : str
        ``MODULE:FACTORY``; ``MODULE`` is any importable module, ``FACTORY`` a name in it (dots
        reach attributes, e.g. ``Model.create``).
    device : {"cpu", "cuda"}
        Passed as ``device=`` when the factory has that parameter.
    checkpoint : path, optional
        Passed as ``checkpoint=`` when given and the factory has that parameter. A checkpoint the
        factory cannot receive is an error rather than silently ignored.
    batch_size : int, optional
        Pairs per call; the detector's ``batch_size`` attribute (else 1) when None. Above 1 only
        for a detector with ``detect_batch``.
    precision : {"float32", "bfloat16", "float16"}, optional
        A resolved precision (:func:`baseline_algorithm.runtime.resolve_runtime`), passed as
        ``precision=`` when given and the factory has that parameter; a factory without it keeps
        its own arithmetic.
    tta : {"none", "flips", "d4"}, optional
        Passed as ``tta=`` when given and the factory has that parameter; anything but ``none``
        needs it.

    Raises
    ------
    DetectorError
        A malformed spec, a module or name that does not exist, a factory whose parameters do not
        fit, a result that is not callable, or a batch size the detector cannot take.
    DetectorFailure
        Importing the module or calling the factory raised inside the participant's code.
    """
    factory = resolve_factory(spec)
    arguments = {"device": device}
    if checkpoint is not None:
        arguments["checkpoint"] = Path(checkpoint)
    if precision is not None:
        arguments["precision"] = precision
    if tta is not None:
        arguments["tta"] = tta
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: call it bare
        signature = inspect.Signature()
    accepts_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()
    )
    passed = {
        name: value
        for name, value in arguments.items()
        if accepts_any or name in signature.parameters
    }
    if checkpoint is not None and "checkpoint" not in passed:
        raise DetectorError(
            f"detector {spec}: a checkpoint was given ({checkpoint}) but the factory "
            f"takes no checkpoint parameter, its signature is {signature}"
        )
    if tta not in (None, "none") and "tta" not in passed:
        raise DetectorError(
            f"detector {spec}: test-time augmentation {tta} was asked for but the factory "
            f"takes no tta parameter, its signature is {signature}"
        )
    try:
        signature.bind(**passed)
    except TypeError as error:
        hint = " (give a checkpoint)" if "checkpoint" in str(error) else ""
        raise DetectorError(
            f"detector {spec}: cannot call the factory with "
            f"{sorted(passed) or 'no arguments'}: {error}{hint}"
        ) from None
    try:
        detect = factory(**passed)
    except OcelotError:
        raise
    except Exception as error:
        raise _failure(spec, "failed while being built", error) from error
    if not callable(detect):
        raise DetectorError(
            f"detector {spec}: the factory returned {type(detect).__name__}, "
            "not a callable detect(pair)"
        )
    declared = getattr(detect, "batch_size", 1) if hasattr(detect, "detect_batch") else 1
    size = declared if batch_size is None else batch_size
    if type(size) is not int or size < 1:
        raise DetectorError(f"detector {spec}: batch size must be an integer >= 1, got {size!r}")
    if size > 1 and not hasattr(detect, "detect_batch"):
        raise DetectorError(
            f"detector {spec}: batch size {size} needs a detect_batch(pairs) method, "
            "which this detector does not have"
        )
    return LoadedDetector(spec, detect, size, passed.get("precision"))


def resolve_factory(spec: str) -> Callable[..., Any]:
    """Import ``MODULE`` and return its ``FACTORY`` (see :func:`load_detector` for the errors)."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise DetectorError(f"detector {spec!r}: expected MODULE:FACTORY, e.g. {BASELINE_DETECTOR}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if module_name.startswith("baseline_algorithm.") and not missing.startswith(
            "baseline_algorithm"
        ):
            raise  # the baseline without its extra: the command line names the extra
        if module_name == missing or module_name.startswith(missing + "."):
            raise DetectorError(
                f"detector {spec}: no module named {missing!r} is installed "
                f"(install the detector's package, or check the name)"
            ) from None
        raise _failure(spec, f"could not import {module_name}", error) from error
    except OcelotError:
        raise
    except Exception as error:
        raise _failure(spec, f"could not import {module_name}", error) from error
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise DetectorError(
                f"detector {spec}: module {module_name} has no {attribute!r} "
                f"({os.path.basename(getattr(module, '__file__', '') or module_name)})"
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise DetectorError(
            f"detector {spec}: {attribute} is {type(factory).__name__}, not a factory"
        )
    return factory


def validated_points(spec: str, image: int, raw: Any) -> PointSet:
    """One pair's points, checked by the organisers' validity rule, as a :class:`PointSet`.

    An (N, 4) array of integers or reals is checked as a whole. Tuples are checked one by one:
    ``x`` and ``y`` that are real numbers are rounded to the nearest integer, a ``cls`` that is a
    whole number becomes an ``int`` and a real ``probability`` a ``float``; anything else is left
    as it is, so that the rule names it. Both accept and refuse exactly the same points, with the
    same line.

    Parameters
    ----------
    spec : str
        The detector, named in messages.
    image : int
        Index ``k`` of the pair in the input (its points are ``image_k``).
    raw : ndarray of shape (N, 4), or iterable of (x, y, cls, probability)
        What the detector returned for the pair.

    Raises
    ------
    DetectorError
        One line: ``detector SPEC on image_k: points[i].FIELD: ... got VALUE``.
    """
    source = f"detector {spec} on image_{image}"
    if isinstance(raw, np.ndarray):
        points = _validated_array(source, image, raw)
        if points is not None:
            return points
        raw = raw.tolist()  # the rule, entry by entry, names the first bad point
    try:
        rows = list(raw)
    except TypeError:
        raise DetectorError(
            f"{source}: returned {type(raw).__name__}, not an iterable of (x, y, cls, probability)"
        ) from None
    entries = []
    for index, row in enumerate(rows):
        try:
            x, y, cls, probability = row
        except (TypeError, ValueError):
            raise DetectorError(
                f"{source}: points[{index}]: expected (x, y, cls, probability), got {preview(row)}"
            ) from None
        entries.append(
            {
                "name": f"image_{image}",
                "point": [_rounded(x), _rounded(y), _whole(cls)],
                "probability": _real(probability),
            }
        )
    try:
        points, _ = points_from_document({"points": entries}, source=source)
    except InputError as error:
        raise DetectorError(str(error)) from None
    return points


def _validated_array(source: str, image: int, raw: np.ndarray) -> PointSet | None:
    """The points of an (N, 4) numeric array, or None when a row breaks the rule (the caller then
    checks entry by entry, which names the row)."""
    if raw.ndim != 2 or raw.shape[1] != 4:
        raise DetectorError(
            f"{source}: returned an array of shape {raw.shape}, expected (N, 4) with columns "
            "x, y, cls, probability"
        )
    if raw.dtype.kind not in "iuf":
        return None
    limits = current_limits()
    limits.check("points", len(raw), f'{source}: "points"', "points")
    limits.check("points_per_image", len(raw), f"{source}: image_{image}", "points")
    rows = raw.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        xy = np.rint(rows[:, :2])
        label, probability = rows[:, 2], rows[:, 3]
        valid = (
            np.isfinite(rows).all(axis=1)
            & ((xy >= 0) & (xy <= PATCH_COORDINATE_MAX)).all(axis=1)
            & ((label == 1) | (label == 2))
            & (probability >= 0.0)
            & (probability <= 1.0)
        )
    if not valid.all():
        return None
    return PointSet.from_arrays(
        np.full(len(rows), image, dtype=np.int64),
        xy.astype(np.int64),
        label.astype(np.int64),
        probability,
    )


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _rounded(value: Any) -> Any:
    if _is_real(value) and math.isfinite(value):
        return int(round(float(value)))
    return _plain(value)


def _whole(value: Any) -> Any:
    if _is_real(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return _plain(value)


def _real(value: Any) -> Any:
    return float(value) if _is_real(value) else value


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, so that the rule's message shows the value itself."""
    return value.item() if hasattr(value, "item") and getattr(value, "shape", None) == () else value
