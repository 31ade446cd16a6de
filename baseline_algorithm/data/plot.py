"""Pictures of pairs: cell patch with its points, tissue patch with its mask and the cell box."""

from __future__ import annotations

import os

import numpy as np

from evaluation.constants import BC, TC, TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN
from evaluation.pairs import Pair

__all__ = ["CLASS_COLOURS", "MASK_COLOURS", "plot_pair"]

CLASS_COLOURS = {BC: "#00c8ff", TC: "#ffd000"}
MASK_COLOURS = {
    TISSUE_BACKGROUND: (0.93, 0.93, 0.93),
    TISSUE_CANCER: (0.85, 0.2, 0.2),
    TISSUE_UNKNOWN: (0.1, 0.1, 0.1),
}


def plot_pair(pair: Pair, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a three-panel PNG: cell patch with points by class, tissue patch, tissue mask.

    The cell patch's box (from the metadata offsets) is drawn on both tissue panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    figure, axes = plt.subplots(1, 3, figsize=(18, 6.6), constrained_layout=True)
    cell, tissue, mask_axis = axes
    cell.imshow(pair.cell_image)
    for label in (BC, TC):
        points = pair.cell_points[pair.cell_points[:, 2] == label]
        cell.scatter(
            points[:, 0],
            points[:, 1],
            s=14,
            c=CLASS_COLOURS[label],
            edgecolors="black",
            linewidths=0.4,
        )
    cell.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                ls="",
                mfc=CLASS_COLOURS[k],
                mec="black",
                label=f"{n} ({int(np.sum(pair.cell_points[:, 2] == k))})",
            )
            for k, n in ((BC, "BC"), (TC, "TC"))
        ],
        loc="upper right",
    )
    mpp = pair.meta.get("cell", {}).get("resized_mpp_x")
    cell.set_title(f"cell patch {pair.name}" + (f" ({mpp:.2f} µm/px)" if mpp else ""))
    tissue.imshow(pair.tissue_image)
    mpp = pair.meta.get("tissue", {}).get("resized_mpp_x")
    tissue.set_title(
        f"tissue patch, {pair.meta.get('organ', '')}" + (f" ({mpp:.2f} µm/px)" if mpp else "")
    )
    if pair.tissue_mask is not None:
        colours = np.zeros(pair.tissue_mask.shape + (3,))
        for value, colour in MASK_COLOURS.items():
            colours[pair.tissue_mask == value] = colour
        mask_axis.imshow(colours)
        mask_axis.legend(
            handles=[
                Patch(color=MASK_COLOURS[v], label=n)
                for v, n in ((1, "background"), (2, "cancer area"), (255, "unknown"))
            ],
            loc="upper right",
        )
    mask_axis.set_title("tissue mask and cell box")
    x0, y0, x1, y1 = pair.cell_box
    for axis in (tissue, mask_axis):
        # Pixel i covers [i, i + 1) in box coordinates and [i - 0.5, i + 0.5) in imshow's.
        axis.add_patch(
            Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="black", lw=2)
        )
    for axis in axes:
        axis.set_axis_off()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
