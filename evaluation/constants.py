"""Facts of the OCELOT 2023 challenge and release, stated once.

Units are in the names: ``_PX`` pixels, ``_UM`` micrometres, ``_MPP`` micrometres per pixel.
"""

from __future__ import annotations

__all__ = [
    "BC",
    "CELL_MPP",
    "CELL_CLASS_NAMES",
    "CLASS_NAMES",
    "FIELD_OF_VIEW_RATIO",
    "MATCH_RADIUS_PX",
    "MATCH_RADIUS_UM",
    "ORGANS",
    "PATCH_SIZE_PX",
    "SPLITS",
    "TC",
    "TISSUE_BACKGROUND",
    "TISSUE_CANCER",
    "TISSUE_MPP",
    "TISSUE_UNKNOWN",
    "TISSUE_VALUES",
]

#: Cell classes of the annotations and the predictions: background cell, tumour cell.
BC, TC = 1, 2
#: Class index -> short name, in the order the metrics report them.
CLASS_NAMES = {BC: "BC", TC: "TC"}
#: Class index -> what the short name stands for.
CELL_CLASS_NAMES = {BC: "background cell", TC: "tumour cell"}

#: Values of the release's tissue masks.
TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN = 1, 2, 255
TISSUE_VALUES = (TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN)

#: Splits of the release, in its own order.
SPLITS = ("train", "val", "test")
#: Organs of the release.
ORGANS = ("kidney", "head-and-neck", "prostate", "stomach", "endometrium", "bladder")

#: Side of a cell or tissue patch as released and as the platform stacks it.
PATCH_SIZE_PX = 1024
#: Resolution of a cell patch at ``PATCH_SIZE_PX``.
CELL_MPP = 0.2
#: The tissue patch covers this many times the side of the cell patch's field of view.
FIELD_OF_VIEW_RATIO = 4
#: Resolution of a tissue patch at ``PATCH_SIZE_PX``.
TISSUE_MPP = CELL_MPP * FIELD_OF_VIEW_RATIO

#: The leaderboard's matching cutoff: a prediction within 3 µm of a cell, inclusive.
MATCH_RADIUS_UM = 3.0
#: The same cutoff in cell-patch pixels at ``CELL_MPP`` (15 px).
MATCH_RADIUS_PX = MATCH_RADIUS_UM / CELL_MPP
