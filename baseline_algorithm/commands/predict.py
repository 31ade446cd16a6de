"""``predict``: detect and classify cells in a Grand Challenge input folder (the container entry).

Any detector ``MODULE:FACTORY`` runs under the same contract (see
:mod:`baseline_algorithm.detector`); the Pred-to-inter-2 baseline is the default. When the
detector's own code raises, its traceback is printed, then one summary line; an invalid point ends
the run with one line naming the detector, the pair, the point, the field and the value. Either way
the exit status is 2 and no output file is written.

The detector is ``--detector``, else ``$OCELOT_DETECTOR``, else the baseline; the checkpoint is
``--checkpoint``, else ``$OCELOT_CHECKPOINT``, else the factory's own default. The container sets
these variables; this is the only place that reads them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from baseline_algorithm.commands.options import add_dataclass_options, options_from_args
from baseline_algorithm.detector import BASELINE_DETECTOR, DetectorFailure
from baseline_algorithm.predict import PredictOptions, predict

__all__ = ["CHECKPOINT_ENV", "DETECTOR_ENV", "add_arguments", "options_from_environment", "run"]

DESCRIPTION = __doc__.split("\n\n", 1)[1]
CHECKPOINT_ENV = "OCELOT_CHECKPOINT"
DETECTOR_ENV = "OCELOT_DETECTOR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # None on the command line means "from the environment, else the default".
    add_dataclass_options(parser, PredictOptions, defaults={"detector": None})


def options_from_environment(
    options: PredictOptions, flags: argparse.Namespace, environ: os._Environ | dict
) -> PredictOptions:
    """``options`` with the detector and checkpoint that ``environ`` names where no flag did."""
    detector = flags.detector or environ.get(DETECTOR_ENV) or BASELINE_DETECTOR
    checkpoint = flags.checkpoint
    if checkpoint is None and environ.get(CHECKPOINT_ENV):
        checkpoint = Path(environ[CHECKPOINT_ENV])
    return replace(options, detector=detector, checkpoint=checkpoint)


def run(args: argparse.Namespace) -> int:
    options = options_from_args(PredictOptions, args, detector=BASELINE_DETECTOR)
    options = options_from_environment(options, args, os.environ)
    try:
        predict(options)
    except DetectorFailure as failure:
        # The participant's traceback first, so that the summary stays the last line.
        sys.stderr.write(failure.participant_traceback)
        raise
    return 0
