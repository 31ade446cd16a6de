"""The console script ``ocelot``: every command of the toolkit in one tree.

The scorer's commands come from :data:`evaluation.cli.EVALUATION_COMMANDS`; the baseline adds
its own. Each command module is imported only when it runs (see :mod:`evaluation.cli`), so
``ocelot score`` starts without torch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from evaluation.cli import EVALUATION_COMMANDS, Command, run_command

__all__ = ["ALGORITHM_COMMANDS", "COMMANDS", "main", "module_main"]

#: Commands of the baseline: data, training, inference, submission checks.
ALGORITHM_COMMANDS = {
    "synthesize": Command(
        "baseline_algorithm.commands.synthesize",
        "write a synthetic dataset in the release and Grand Challenge layouts",
        "algorithm",
    ),
    "stats": Command(
        "baseline_algorithm.commands.stats",
        "cell-in-tissue counts and class ratios of a release-layout dataset",
        "images",
    ),
    "train": Command("baseline_algorithm.commands.train", "train a cell/tissue model", "algorithm"),
    "reproduce": Command(
        "baseline_algorithm.commands.reproduce",
        "train the paper's variants and tabulate their test scores",
        "algorithm",
    ),
    "predict": Command(
        "baseline_algorithm.commands.predict",
        "detect cells in a Grand Challenge input folder, any detector (the algorithm container)",
        "algorithm",
    ),
    "preflight": Command(
        "baseline_algorithm.commands.preflight",
        "run an algorithm image as the platform does and check what it writes",
    ),
    "synthesize-slide": Command(
        "baseline_algorithm.commands.synthesize_slide",
        "write a synthetic pyramidal TIFF slide and its ground-truth points",
        "algorithm",
    ),
    "predict-slide": Command(
        "baseline_algorithm.commands.predict_slide",
        "detect cells on a whole-slide image with any detector (tiles with their tissue context)",
        "slides",
    ),
    "predict-slides": Command(
        "baseline_algorithm.commands.predict_slides",
        "predict-slide on every slide of a CSV manifest, one Dask task per slide",
        "slides",
    ),
}
#: Every command of ``ocelot``.
COMMANDS = {**EVALUATION_COMMANDS, **ALGORITHM_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """``ocelot COMMAND [options]``."""
    return run_command("ocelot", COMMANDS, argv)


def module_main(argv: Sequence[str] | None = None) -> int:
    """``python -m baseline_algorithm COMMAND``: the same tree."""
    return run_command("python -m baseline_algorithm", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
