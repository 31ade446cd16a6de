"""Resource bounds on what a submission or a dataset may ask of the scorer and the readers.

A real OCELOT submission stays far below every default (130 images, a few hundred cells each,
a few MB of JSON); a broken or hostile one (every pixel a cell, a 10 GB file, ``num_images``
10^9, a 40,000 px TIFF of 12 KB) is refused with one line that names the file, the figure and
the limit, instead of being read until the machine runs out of memory. Each bound can be raised
through its environment variable.

The environment is read at the edge only: every command (and the evaluation container's entry)
reads it once with :func:`limits_from_environment` and puts the result in force with
:func:`limits_in_force` for the run; library code asks :func:`current_limits`, which gives the
limits in force, else the defaults.

======================  =====================================  ==============================
bound                   default                                environment variable
======================  =====================================  ==============================
document size           256 MB of JSON                         ``OCELOT_MAX_DOCUMENT_MB``
points in a document    5,000,000                              ``OCELOT_MAX_POINTS``
points of one image     100,000 (not in whole-slide mode)      ``OCELOT_MAX_POINTS_PER_IMAGE``
``num_images``          100,000                                ``OCELOT_MAX_IMAGES``
candidate pairs         20,000,000 within the radius, a class  ``OCELOT_MAX_CANDIDATE_PAIRS``
                        of one image
jobs of a submission    10,000                                 ``OCELOT_MAX_JOBS``
patch side              4,096 px, read from the file header    ``OCELOT_MAX_PATCH_SIDE``
bootstrap replicates    100,000                                ``OCELOT_MAX_REPLICATES``
submissions ranked      1,000 in one leaderboard               ``OCELOT_MAX_SUBMISSIONS``
======================  =====================================  ==============================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields

from evaluation.errors import OcelotError, preview

__all__ = [
    "ENVIRONMENT_VARIABLES",
    "LimitError",
    "Limits",
    "current_limits",
    "limits_from_environment",
    "limits_in_force",
]


class LimitError(OcelotError):
    """Input over a resource bound; names the file, the figure, the limit and how to raise it."""


@dataclass(frozen=True)
class Limits:
    """The bounds; see the module's table. Sizes in MB (10^6 bytes) and pixels."""

    document_mb: int = 256
    points: int = 5_000_000
    points_per_image: int = 100_000
    images: int = 100_000
    candidate_pairs: int = 20_000_000
    jobs: int = 10_000
    patch_side_px: int = 4096
    replicates: int = 100_000
    submissions: int = 1000

    def check(self, name: str, value: int, where: str, what: str) -> None:
        """Raise :class:`LimitError` when ``value`` exceeds the bound ``name``.

        Parameters
        ----------
        name : str
            A field of this class, e.g. ``"points"``.
        value : int
            The figure of the input.
        where : str
            The file (and entry) it was found in.
        what : str
            What the figure counts, e.g. ``"points"``.
        """
        limit = getattr(self, name)
        if value > limit:
            # A figure of thousands of digits would be a line of thousands of characters.
            figure = f"{value:,}" if value.bit_length() <= 64 else preview(value)
            raise LimitError(
                f"{where}: {figure} {what} exceed the limit of {limit:,} "
                f"(raise it with {ENVIRONMENT_VARIABLES[name]})"
            )


#: Field -> the environment variable that overrides it.
ENVIRONMENT_VARIABLES = {
    "document_mb": "OCELOT_MAX_DOCUMENT_MB",
    "points": "OCELOT_MAX_POINTS",
    "points_per_image": "OCELOT_MAX_POINTS_PER_IMAGE",
    "images": "OCELOT_MAX_IMAGES",
    "candidate_pairs": "OCELOT_MAX_CANDIDATE_PAIRS",
    "jobs": "OCELOT_MAX_JOBS",
    "patch_side_px": "OCELOT_MAX_PATCH_SIDE",
    "replicates": "OCELOT_MAX_REPLICATES",
    "submissions": "OCELOT_MAX_SUBMISSIONS",
}


def limits_from_environment(environ: Mapping[str, str] = os.environ) -> Limits:
    """The defaults, with every bound its environment variable sets replaced.

    Examples
    --------
    >>> limits_from_environment({"OCELOT_MAX_POINTS": "10"}).points
    10

    Raises
    ------
    OcelotError
        A variable is set to anything but a positive integer.
    """
    values = {}
    for field in fields(Limits):
        variable = ENVIRONMENT_VARIABLES[field.name]
        text = environ.get(variable)
        if text is None:
            continue
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise OcelotError(f"{variable}: must be a positive integer, got {preview(text)}")
        values[field.name] = value
    return Limits(**values)


# One process runs one command: a module-level value (not a context variable) is seen by the
# threads a command starts, and inherited by the worker processes it forks.
_in_force = Limits()


def current_limits() -> Limits:
    """The limits in force (:func:`limits_in_force`), else the defaults."""
    return _in_force


@contextlib.contextmanager
def limits_in_force(limits: Limits) -> Iterator[Limits]:
    """Put ``limits`` in force for the body; the previous ones are back afterwards."""
    global _in_force
    previous, _in_force = _in_force, limits
    try:
        yield limits
    finally:
        _in_force = previous
