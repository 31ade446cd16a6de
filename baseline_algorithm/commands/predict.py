"""``predict``: detect and classify cells in a Grand Challenge input folder (the container entry).

Any detector ``MODULE:FACTORY`` runs under the same contract (see
:mod:`baseline_algorithm.detector`); the Pred-to-inter-2 baseline is the default. When the
detector's own code raises, its traceback is printed, then one summary line; an invalid point ends
the run with one line naming the detector, the pair, the point, the field and the value. Either way
the exit status is 2 and no output file is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..detector import BASELINE_DETECTOR, DEVICES, PRECISIONS, DetectorFailure
from ..predict import (
    CHECKPOINT_ENV,
    DETECTOR_ENV,
    PLATFORM_INPUT,
    PLATFORM_OUTPUT,
    predict,
    resolve_checkpoint,
    resolve_detector,
)

HELP = "detect and classify cells in a Grand Challenge input folder (the container entry)"
DESCRIPTION = __doc__.split("\n\n", 1)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input",
        type=Path,
        default=PLATFORM_INPUT,
        help="input folder: images/cell_patches/*.tif, images/tissue_patches/*.tif, "
        f"metadata.json (default {PLATFORM_INPUT})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=PLATFORM_OUTPUT,
        help=f'the "Multiple points" JSON to write (default {PLATFORM_OUTPUT})',
    )
    parser.add_argument(
        "--detector",
        default=None,
        metavar="MODULE:FACTORY",
        help=f"the detector factory (default ${DETECTOR_ENV}, else the baseline "
        f"{BASELINE_DETECTOR})",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help=f"weights handed to the factory (default ${CHECKPOINT_ENV}, else the "
        "factory's own default: the shipped weights for the baseline)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="handed to the factory; auto: CUDA when PyTorch sees a GPU, else CPU",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="pairs per call, for a detector with detect_batch (default: its own "
        "batch_size; the baseline's is 1 on CPU, 4 on CUDA)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="arithmetic of the forward pass, handed to the factory; auto: bfloat16 autocast on "
        "CUDA (float16 on a GPU without bfloat16) and on a CPU with bfloat16 instructions "
        "(avx512_bf16, amx_bf16), else float32",
    )
    parser.add_argument(
        "--read-ahead",
        type=int,
        default=None,
        metavar="PAIRS",
        help="pairs a thread reads while the detector runs (default: one batch; 0: none)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress")


def run(args: argparse.Namespace) -> int:
    try:
        predict(
            args.input,
            args.output,
            detector=resolve_detector(args.detector),
            checkpoint=resolve_checkpoint(args.checkpoint),
            device=args.device,
            batch_size=args.batch_size,
            precision=args.precision,
            progress=not args.quiet,
            read_ahead_pairs=args.read_ahead,
        )
    except DetectorFailure as failure:
        # The participant's traceback first, so that the summary stays the last line.
        sys.stderr.write(failure.participant_traceback)
        raise
    return 0
