"""``python -m baseline_algorithm predict``: the Grand Challenge algorithm entry, for any detector.

The steps, each a function:

1. :func:`read_inputs` opens the input folder (stacked cell and tissue TIFFs + ``metadata.json``)
   and streams its pairs, one at a time, so that memory does not grow with the number of pairs;
2. :func:`baseline_algorithm.detector.load_detector` imports the detector ``MODULE:FACTORY``
   (the Pred-to-inter-2 baseline by default) and builds it once;
3. :func:`detect_all` runs it on every pair (in batches if the detector opts in), checks each
   pair's points against the organisers' validity rule and reports progress per pair; a thread
   reads the next batch of pairs while the detector works on this one (:func:`read_ahead`);
4. :func:`write_predictions` writes the "Multiple points" document atomically, once every point
   has passed: an invalid point leaves no output file.

Inside the container the platform's paths are the defaults (``/input``,
``/output/cell_classification.json``); on a host give ``--input DIR --output FILE``. The detector
is ``--detector``, else ``$OCELOT_DETECTOR``, else the baseline; the checkpoint handed to its
factory is ``--checkpoint``, else ``$OCELOT_CHECKPOINT``, else none (the factory's default).

This module does not import PyTorch: an image whose detector needs no torch does without it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from evaluation import PointSet, points_document, write_json_atomic
from evaluation.errors import OcelotError
from evaluation.formats import check_writable
from evaluation.metadata import read_gc_metadata
from evaluation.pairs import Pair
from evaluation.stacked import iter_gc_input_pairs

from .detector import (
    BASELINE_DETECTOR,
    LoadedDetector,
    load_detector,
    resolve_device,
    resolve_precision,
    validated_points,
)

PLATFORM_INPUT = Path("/input")
PLATFORM_OUTPUT = Path("/output/cell_classification.json")
CHECKPOINT_ENV = "OCELOT_CHECKPOINT"
DETECTOR_ENV = "OCELOT_DETECTOR"
#: Logged as the precision of a detector whose factory takes no ``precision`` parameter.
OWN_PRECISION = "the detector's own (its factory takes none)"


T = TypeVar("T")


class PredictError(OcelotError, ValueError):
    """A problem with the input folder, the output path or the options; one line."""


def resolve_detector(flag: str | None) -> str:
    """The detector to run: ``--detector``, else ``$OCELOT_DETECTOR``, else the baseline."""
    return flag or os.environ.get(DETECTOR_ENV) or BASELINE_DETECTOR


def resolve_checkpoint(flag: Path | None) -> Path | None:
    """The checkpoint for the factory: ``--checkpoint``, else ``$OCELOT_CHECKPOINT``, else None."""
    if flag is not None:
        return flag
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV])
    return None


def read_inputs(input_dir: Path) -> tuple[int, Iterator[Pair]]:
    """The number of pairs and a stream of them, from a Grand Challenge input folder.

    The first pair is read here, so that a missing or malformed stack (or a patch count that
    differs from ``metadata.json``) is reported before the detector is built.
    """
    if not input_dir.is_dir():
        raise PredictError(
            f"{input_dir}: input folder not found (expected images/cell_patches/, "
            "images/tissue_patches/ and metadata.json)"
        )
    count = len(read_gc_metadata(input_dir))
    pairs = iter_gc_input_pairs(input_dir)
    try:
        first = next(pairs)
    except StopIteration:
        return 0, iter(())
    return count, itertools.chain([first], pairs)


def detect_all(
    detector: LoadedDetector, pairs: Iterator[Pair], count: int, *, progress: bool = True,
    read_ahead_pairs: int | None = None,
) -> PointSet:
    """Validated points of every pair (pair k becomes ``image_k``).

    Progress is a tqdm bar on a terminal, else one log line per pair: container logs are collected
    line by line, so a bar redrawn with carriage returns would show nothing until the end.
    ``read_ahead_pairs`` pairs (default: one batch) are read by a thread while the detector
    runs; 0 reads each batch when the detector asks for it.

    Raises
    ------
    DetectorError
        A point breaks the validity rule (the message names the detector, ``image_k``, the
        point's index, the field and the value), or ``detect_batch`` returned too few results.
    DetectorFailure
        The detector raised.
    """
    bar = progress and sys.stderr.isatty()
    depth = detector.batch_size if read_ahead_pairs is None else read_ahead_pairs
    # Closed on the way out, also when the detector raised: the reading thread stops then.
    source = (contextlib.closing(read_ahead(pairs, depth)) if depth
              else contextlib.nullcontext(pairs))
    found: list[PointSet] = []
    index = 0
    with source as pairs, tqdm(total=count, desc="predict", unit="pair", disable=not bar,
                               leave=False) as meter:
        if progress and not bar:
            pairs = log_each_pair(pairs, count)
        while batch := list(itertools.islice(pairs, detector.batch_size)):
            for raw in detector.detect_pairs(batch):
                found.append(validated_points(detector.spec, index, raw))
                index += 1
            meter.update(len(batch))
    found = [points for points in found if len(points)]
    if not found:
        return PointSet.empty()
    return PointSet(
        *(
            np.concatenate([getattr(p, field) for p in found])
            for field in ("image", "xy", "label", "probability")
        )
    )


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


def check_output(output: Path) -> None:
    """Fail now, not after all the inference, when ``output`` cannot or must not be written.

    Missing folders are created only when the predictions are written, so that a failed run
    leaves nothing behind.
    """
    if output.parent.is_dir():
        check_writable(output)
        return
    existing = next(folder for folder in output.parents if folder.exists())
    if not existing.is_dir():
        raise PredictError(f"{output}: cannot write: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PredictError(f"{output}: cannot write: folder {existing} is not writable by uid "
                           f"{os.getuid()}")


def write_predictions(points: PointSet, output: Path) -> None:
    """Write ``points`` as a "Multiple points" document: the whole file or nothing."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output, points_document(points))
    except OSError as exc:
        raise PredictError(
            f"{output}: cannot write the predictions ({exc.strerror or exc})"
        ) from None


def predict(
    input_dir: Path,
    output: Path,
    *,
    detector: str = BASELINE_DETECTOR,
    checkpoint: Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    precision: str = "auto",
    progress: bool = True,
    read_ahead_pairs: int | None = None,
) -> PointSet:
    """Read the input folder, detect the cells of every pair, write ``output``; returns the points.

    Parameters
    ----------
    input_dir : Path
        Grand Challenge input folder.
    output : Path
        The "Multiple points" JSON, written only when every point is valid.
    detector : str
        ``MODULE:FACTORY`` (see :mod:`baseline_algorithm.detector`).
    checkpoint : Path, optional
        Handed to the factory as ``checkpoint=``.
    device : {"auto", "cpu", "cuda"}
        Handed to the factory as ``device=`` (``auto``: CUDA when PyTorch sees a GPU).
    batch_size : int, optional
        Pairs per call of a detector with ``detect_batch``; its own ``batch_size`` by default.
    precision : {"auto", "float32", "bfloat16", "float16"}
        Resolved for the device (:func:`~baseline_algorithm.detector.resolve_precision`) and handed
        to the factory as ``precision=`` when it takes one.
    read_ahead_pairs : int, optional
        Pairs read by a thread while the detector runs (default: one batch; 0: none).
    """
    if batch_size is not None and batch_size < 1:
        raise PredictError(f"batch size {batch_size} must be at least 1")
    if read_ahead_pairs is not None and read_ahead_pairs < 0:
        raise PredictError(f"read-ahead of {read_ahead_pairs} pairs must be at least 0")
    chosen_device = resolve_device(device)
    chosen_precision = resolve_precision(precision, chosen_device)
    check_output(output)
    count, pairs = read_inputs(input_dir)
    loaded = load_detector(
        detector,
        device=chosen_device,
        checkpoint=checkpoint,
        batch_size=batch_size,
        precision=chosen_precision,
    )
    described = getattr(loaded.detect, "describe", None)
    details = f" ({described()})" if callable(described) else ""
    log(
        f"{count} pairs from {input_dir}, detector {detector}{details}, "
        f"checkpoint {checkpoint if checkpoint is not None else 'the detector default'}, "
        f"device {chosen_device}, precision {loaded.precision or OWN_PRECISION}, "
        f"batch size {loaded.batch_size}"
    )
    started = time.perf_counter()
    points = detect_all(loaded, pairs, count, progress=progress, read_ahead_pairs=read_ahead_pairs)
    write_predictions(points, output)
    elapsed = time.perf_counter() - started
    log(
        f"wrote {len(points)} cells of {count} pairs to {output} in {elapsed:.1f} s "
        f"({elapsed / max(count, 1):.2f} s per pair)"
    )
    return points


def log(message: str) -> None:
    print(f"predict: {message}", file=sys.stderr, flush=True)
