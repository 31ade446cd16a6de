"""``python -m baseline_algorithm predict``: the Grand Challenge algorithm entry of the baseline.

The steps, each a function:

1. :func:`read_inputs` opens the input folder (stacked cell and tissue TIFFs + ``metadata.json``)
   and streams its pairs, one at a time, so that memory does not grow with the number of pairs;
2. :func:`load_model` reads the checkpoint onto the chosen device (GPU when there is one),
   with the detection settings it was validated with;
3. :func:`process_pairs` turns every pair into cell points (the model package's inference, the same
   code as training validation), reporting progress per pair;
4. :func:`write_predictions` writes the "Multiple points" document atomically.

Inside the container the platform's paths are the defaults (``/input``,
``/output/cell_classification.json``); on a host give ``--input DIR --output FILE``.
The weights are ``--checkpoint``, else ``$OCELOT_CHECKPOINT``, else the shipped checkpoint.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from evaluation import InputError, PointSet, points_document, write_json_atomic

from .checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint
from evaluation.errors import DataError
from evaluation.pairs import Pair
from evaluation.stacked import iter_gc_input_pairs
from evaluation.metadata import read_gc_metadata
from .inference import DetectionSettings, predict_points
from .model import CellTissueModel

PLATFORM_INPUT = Path("/input")
PLATFORM_OUTPUT = Path("/output/cell_classification.json")
CHECKPOINT_ENV = "OCELOT_CHECKPOINT"
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "pred_to_inter_2.pt"
DEVICES = ("auto", "cpu", "cuda")
#: How the OCELOT organisers run a submission (`docker run --network none --cap-drop ALL
#: --security-opt no-new-privileges --memory 4g --memory-swap 4g --shm-size 128m --pids-limit 256`),
#: as Docker SDK keyword arguments, for the tests and benchmarks that run this container.
ORGANISER_RUN_FLAGS = dict(
    network_mode="none",
    cap_drop=["ALL"],
    security_opt=["no-new-privileges"],
    mem_limit="4g",
    memswap_limit="4g",
    shm_size="128m",
    pids_limit=256,
)


class PredictError(ValueError):
    """A problem with the command line or the environment (not the input files); one line."""


# Errors caused by what the user gave us: reported as one stderr line, without a traceback.
USER_ERRORS = (PredictError, DataError, CheckpointError, InputError)


def resolve_checkpoint(flag: Path | None) -> Path:
    """The checkpoint to use: ``--checkpoint``, else ``$OCELOT_CHECKPOINT``, else the shipped one."""
    if flag is not None:
        return flag
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV])
    return SHIPPED_CHECKPOINT


def select_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name not in DEVICES:
        raise PredictError(f"--device {name!r} is not one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise PredictError("--device cuda: no CUDA device is available (use --device auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def read_inputs(input_dir: Path) -> tuple[int, Iterator[Pair]]:
    """The number of pairs and a stream of them, from a Grand Challenge input folder.

    The first pair is read here, so that a missing or malformed stack (or a patch count that
    differs from ``metadata.json``) is reported before the model is loaded.
    """
    if not input_dir.is_dir():
        raise PredictError(f"{input_dir}: input folder not found (expected images/cell_patches/, "
                           "images/tissue_patches/ and metadata.json)")
    count = len(read_gc_metadata(input_dir))
    pairs = iter_gc_input_pairs(input_dir)
    first = next(pairs)
    return count, itertools.chain([first], pairs)


def load_model(checkpoint: Path, device: torch.device) -> tuple[CellTissueModel, DetectionSettings]:
    """The checkpoint's model (eval mode, on ``device``) and the detection settings it was validated
    with (training stores them as ``detection``; the defaults otherwise)."""
    payload = read_checkpoint(checkpoint)
    model = model_from_checkpoint(payload).to(device)
    if model.needs_tissue_label:
        raise PredictError(f"{checkpoint}: variant {model.config.variant!r} needs the tissue annotation, "
                           "which a submission does not get")
    try:
        settings = DetectionSettings(**payload.get("detection", {}))
    except (TypeError, ValueError) as exc:
        raise PredictError(f"{checkpoint}: invalid detection settings {payload.get('detection')!r} ({exc})") from None
    return model, settings


def process_pairs(
    model: CellTissueModel,
    pairs: Iterator[Pair],
    count: int,
    *,
    settings: DetectionSettings = DetectionSettings(),
    batch_size: int,
    progress: bool = True,
) -> PointSet:
    """Cell points of every pair (pair k becomes ``image_k``), pixels of the input cell patches.

    Progress is a tqdm bar on a terminal, else one log line per pair: container logs are collected
    line by line, so a bar redrawn with carriage returns would show nothing until the end.
    """
    bar = progress and sys.stderr.isatty()
    if progress and not bar:
        pairs = log_each_pair(pairs, count)
    return predict_points(model, pairs, settings=settings, batch_size=batch_size, progress=bar, total=count)


def log_each_pair(pairs: Iterator[Pair], count: int) -> Iterator[Pair]:
    """Pass ``pairs`` through, logging each as it is taken for inference."""
    started = time.perf_counter()
    for index, pair in enumerate(pairs):
        log(f"pair {index + 1}/{count} ({pair.name}), {time.perf_counter() - started:.1f} s since the first")
        yield pair


def write_predictions(points: PointSet, output: Path) -> None:
    """Write ``points`` as a "Multiple points" document: the whole file or nothing."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output, points_document(points))
    except OSError as exc:
        raise PredictError(f"{output}: cannot write the predictions ({exc.strerror or exc})") from None


def predict(
    input_dir: Path,
    output: Path,
    checkpoint: Path,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    progress: bool = True,
) -> PointSet:
    """Read the input folder, detect the cells of every pair, write ``output``; returns the points.

    ``batch_size`` defaults to 1 on CPU (peak memory of one pair) and 4 on CUDA.
    """
    torch_device = select_device(device)
    if batch_size is None:
        batch_size = 4 if torch_device.type == "cuda" else 1
    if batch_size < 1:
        raise PredictError(f"--batch-size {batch_size} must be at least 1")
    count, pairs = read_inputs(input_dir)
    model, settings = load_model(checkpoint, torch_device)
    log(f"{count} pairs from {input_dir}, checkpoint {checkpoint} ({model.config.variant}, "
        f"{model.config.encoder}, {model.config.patch_size} px, threshold {settings.threshold}, "
        f"min distance {settings.min_distance_um} um), device {torch_device}, batch size {batch_size}")
    started = time.perf_counter()
    points = process_pairs(model, pairs, count, settings=settings, batch_size=batch_size, progress=progress)
    write_predictions(points, output)
    elapsed = time.perf_counter() - started
    log(f"wrote {len(points)} cells of {count} pairs to {output} in {elapsed:.1f} s "
        f"({elapsed / count:.2f} s per pair)")
    return points


def log(message: str) -> None:
    print(f"predict: {message}", file=sys.stderr, flush=True)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="detect and classify cells in a Grand Challenge input folder (the container entry)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--input", type=Path, default=PLATFORM_INPUT,
                        help=f"input folder: images/cell_patches/*.tif, images/tissue_patches/*.tif, "
                             f"metadata.json (default {PLATFORM_INPUT})")
    parser.add_argument("--output", type=Path, default=PLATFORM_OUTPUT,
                        help=f"the \"Multiple points\" JSON to write (default {PLATFORM_OUTPUT})")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help=f"model weights (default ${CHECKPOINT_ENV}, else the shipped {SHIPPED_CHECKPOINT.name})")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when available, else CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per forward pass (default: 1 on CPU, 4 on CUDA)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        predict(
            args.input,
            args.output,
            resolve_checkpoint(args.checkpoint),
            device=args.device,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    except USER_ERRORS as exc:
        print(f"predict: error: {exc}", file=sys.stderr)
        return 1
    return 0
