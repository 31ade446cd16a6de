"""``python -m baseline_algorithm predict``: the Grand Challenge algorithm entry, for any detector.

The steps, each a function:

1. :class:`evaluation.stacked.GcInput` opens the input folder (stacked cell and tissue TIFFs +
   ``metadata.json``, read once and checked together) and streams its pairs one at a time, so
   that memory does not grow with the number of pairs;
2. :func:`baseline_algorithm.runtime.resolve_runtime` resolves ``--device`` and ``--precision``
   once, and :func:`baseline_algorithm.detector.load_detector` imports the detector
   ``MODULE:FACTORY`` (the Pred-to-inter-2 baseline by default) and builds it once;
3. :func:`detect_all` runs it on every pair, in batches if the detector opts in
   (:func:`detect_each`), checks each pair's points against the organisers' validity rule and
   reports progress; a thread reads the next batch of pairs while the detector works on this
   one (:func:`read_ahead`);
4. :func:`write_predictions` writes the "Multiple points" document atomically, once every point
   has passed: an invalid point leaves no output file.

Points stay arrays from the detector to the document when the detector returns (N, 4) arrays.
Options are one dataclass, :class:`PredictOptions`; the environment (``$OCELOT_DETECTOR``,
``$OCELOT_CHECKPOINT``) is read by the command line only
(:mod:`baseline_algorithm.commands.predict`).

This module does not import PyTorch: an image whose detector needs no torch does without it.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from baseline_algorithm.commands.options import option
from baseline_algorithm.detector import (
    BASELINE_DETECTOR,
    LoadedDetector,
    load_detector,
    validated_points,
)
from baseline_algorithm.runtime import DEVICES, PRECISIONS, Host, resolve_runtime
from baseline_algorithm.tta import TTA_MODES
from evaluation import PointSet, points_document, write_json_atomic
from evaluation.errors import OcelotError
from evaluation.files import check_writable
from evaluation.pairs import Pair
from evaluation.stacked import GcInput

__all__ = [
    "PLATFORM_INPUT",
    "PLATFORM_OUTPUT",
    "PredictError",
    "PredictOptions",
    "batched",
    "detect_all",
    "detect_each",
    "predict",
    "read_ahead",
]

PLATFORM_INPUT = Path("/input")
PLATFORM_OUTPUT = Path("/output/cell_classification.json")
#: Logged as the precision of a detector whose factory takes no ``precision`` parameter.
OWN_PRECISION = "the detector's own (its factory takes none)"


T = TypeVar("T")


class PredictError(OcelotError, ValueError):
    """A problem with the input folder, the output path or the options; one line."""


@dataclass(frozen=True)
class PredictOptions:
    """Options of one ``predict`` run; each field is the option ``--field-name`` of the command.

    ``checkpoint`` None leaves the factory's own default (the shipped weights for the baseline).
    """

    input: Path = option(
        PLATFORM_INPUT,
        "input folder: images/cell_patches/*.tif, images/tissue_patches/*.tif, metadata.json",
    )
    output: Path = option(PLATFORM_OUTPUT, 'the "Multiple points" JSON to write')
    detector: str = option(
        BASELINE_DETECTOR,
        f"the detector factory (on the command line: $OCELOT_DETECTOR, else {BASELINE_DETECTOR})",
        metavar="MODULE:FACTORY",
    )
    checkpoint: Path | None = option(
        None,
        "weights handed to the factory (on the command line: $OCELOT_CHECKPOINT, else the "
        "factory's own default: the shipped weights for the baseline)",
    )
    device: str = option(
        "auto",
        "handed to the factory; auto: CUDA when PyTorch sees a GPU, else CPU",
        choices=DEVICES,
    )
    precision: str = option(
        "auto",
        "arithmetic of the forward pass, handed to the factory; auto: bfloat16 autocast on CUDA "
        "(float16 on a GPU without bfloat16) and on a CPU with bfloat16 instructions "
        "(avx512_bf16, amx_bf16), else float32",
        choices=PRECISIONS,
    )
    batch_size: int | None = option(
        None,
        "pairs per call, for a detector with detect_batch (default: its own batch_size; the "
        "baseline's is 1 on CPU, 4 on CUDA)",
    )
    tta: str = option(
        "none",
        "test-time augmentation, handed to the factory: flips (identity, horizontal and vertical "
        "flips) or d4 (the 8 flips and rotations), maps averaged before cells are found; each "
        "view costs one more forward pass",
        choices=tuple(TTA_MODES),
    )
    read_ahead: int | None = option(
        None,
        "pairs a thread reads while the detector runs (default: one batch; 0: none)",
        metavar="PAIRS",
    )
    quiet: bool = option(False, "no progress")

    def __post_init__(self):
        if self.batch_size is not None and self.batch_size < 1:
            raise PredictError(f"batch size {self.batch_size} must be at least 1")
        if self.read_ahead is not None and self.read_ahead < 0:
            raise PredictError(f"read-ahead of {self.read_ahead} pairs must be at least 0")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of ``size`` (the last may be shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def detect_each(detector: LoadedDetector, pairs: Iterable[Pair]) -> Iterator[list[PointSet]]:
    """For each batch of ``detector.batch_size`` pairs, their validated points, pair by pair.

    Pair k of the stream becomes ``image_k``.

    Raises
    ------
    DetectorError
        A point breaks the validity rule (the message names the detector, ``image_k``, the
        point's index, the field and the value), or ``detect_batch`` returned too few results.
    DetectorFailure
        The detector raised.
    """
    index = 0
    for batch in batched(pairs, detector.batch_size):
        found = []
        for raw in detector.detect_pairs(batch):
            found.append(validated_points(detector.spec, index, raw))
            index += 1
        yield found


def detect_all(
    detector: LoadedDetector,
    pairs: Iterable[Pair],
    count: int | None,
    *,
    progress: bool = True,
    log_pairs: bool = True,
    read_ahead_pairs: int | None = None,
) -> PointSet:
    """Validated points of every pair (pair k becomes ``image_k``); see :func:`detect_each`.

    Progress is a tqdm bar on a terminal; elsewhere, with ``log_pairs``, one log line per pair:
    container logs are collected line by line, so a bar redrawn with carriage returns would show
    nothing until the end. ``read_ahead_pairs`` pairs (default: one batch) are read by a thread
    while the detector runs; 0 reads each batch when the detector asks for it.
    """
    bar = progress and sys.stderr.isatty()
    depth = detector.batch_size if read_ahead_pairs is None else read_ahead_pairs
    # Closed on the way out, also when the detector raised: the reading thread stops then.
    source = (
        contextlib.closing(read_ahead(iter(pairs), depth))
        if depth
        else contextlib.nullcontext(pairs)
    )
    found: list[PointSet] = []
    with (
        source as stream,
        tqdm(total=count, desc="predict", unit="pair", disable=not bar, leave=False) as meter,
    ):
        if progress and log_pairs and not bar:
            stream = log_each_pair(stream, count)
        for points in detect_each(detector, stream):
            found.extend(points)
            meter.update(len(points))
    return PointSet.concatenate(found)


_END = object()


def read_ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items`` in order, up to ``depth`` of them produced ahead by a thread.

    Reading a pair (file reads, TIFF decoding, releasing the page cache) then overlaps the
    detector's work on the previous ones instead of waiting for it; both release the GIL for
    most of their time. An exception raised while producing is raised here, at the item it
    replaces. Closing the generator early (the detector failed) stops the thread at its next item.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stopped.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _END))
        except BaseException as error:  # handed to the consumer, which raises it
            put((False, error))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            produced, item = ready.get()
            if not produced:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stopped.set()
        thread.join()


def log_each_pair(pairs: Iterator[Pair], count: int) -> Iterator[Pair]:
    """Pass ``pairs`` through, logging each as it is taken by the detector."""
    started = time.perf_counter()
    for index, pair in enumerate(pairs):
        log(
            f"pair {index + 1}/{count} ({pair.name}), "
            f"{time.perf_counter() - started:.1f} s since the first"
        )
        yield pair


def write_predictions(points: PointSet, output: Path) -> None:
    """Write ``points`` as a "Multiple points" document: the whole file or nothing."""
    try:
        write_json_atomic(output, points_document(points), create_parents=True)
    except OSError as exc:
        raise PredictError(
            f"{output}: cannot write the predictions ({exc.strerror or exc})"
        ) from None


def predict(options: PredictOptions, host: Host | None = None) -> PointSet:
    """Read the input folder, detect the cells of every pair, write the output; returns the points.

    Parameters
    ----------
    options : PredictOptions
    host : Host, optional
        The machine ``auto`` device and precision are resolved for (default: this one).
    """
    runtime = resolve_runtime(options.device, options.precision, host)
    # Missing folders are created only when the predictions are written: a failed run leaves
    # nothing behind.
    check_writable(options.output, create_parents=True)
    with GcInput(options.input) as opened:
        loaded = load_detector(
            options.detector,
            device=runtime.device,
            checkpoint=options.checkpoint,
            batch_size=options.batch_size,
            precision=runtime.precision,
            tta=options.tta,
        )
        arithmetic = (
            str(runtime)
            if loaded.precision is not None
            else f"device {runtime.device}, precision {OWN_PRECISION}"
        )
        log(
            f"{len(opened)} pairs from {options.input}, detector {loaded.description()}, "
            f"checkpoint {options.checkpoint or 'the detector default'}, {arithmetic}, "
            f"batch size {loaded.batch_size}"
        )
        started = time.perf_counter()
        points = detect_all(
            loaded,
            opened,
            len(opened),
            progress=not options.quiet,
            read_ahead_pairs=options.read_ahead,
        )
    write_predictions(points, options.output)
    elapsed = time.perf_counter() - started
    log(
        f"wrote {len(points)} cells of {len(opened)} pairs to {options.output} in {elapsed:.1f} s "
        f"({elapsed / max(len(opened), 1):.2f} s per pair)"
    )
    return points


def log(message: str) -> None:
    print(f"predict: {message}", file=sys.stderr, flush=True)
