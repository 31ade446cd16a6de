#!/usr/bin/env python
"""Draw the data flow of each model variant as a small PNG (docs/model_<variant>.png).

The pictures are drawn from :data:`baseline_algorithm.model.VARIANTS` and the default
:class:`~baseline_algorithm.model.ModelConfig` (Feature-sharing's default exchanges), so they
follow the code.

Usage: python scripts/plot_model_variants.py [OUT_DIR]   (default: docs/)
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from baseline_algorithm.model import (  # noqa: E402
    SHARING_POSITIONS,
    VARIANTS,
    ModelConfig,
    has_tissue_branch,
)

STAGES = ("patch", "encoder", "ASPP", "decoder", "head")
# x of each stage box; a concatenation point sits halfway between two boxes.
STAGE_X = {name: 1.6 * k for k, name in enumerate(STAGES)}
POINT_X = {
    "input": 0.8,
    "encoder": 0.8 + 1.6,
    "aspp": 0.8 + 3.2,
    "decoder": 0.8 + 4.8,
}
CELL_Y, TISSUE_Y = 0.0, 1.6
COLOURS = {"cell": "#dbe9f6", "tissue": "#f6e3d4", "context": "#c0392b", "label": "#7d3c98"}


def box(axis, x, y, text, colour):
    axis.add_patch(
        FancyBboxPatch(
            (x - 0.55, y - 0.28),
            1.1,
            0.56,
            boxstyle="round,pad=0.02",
            fc=colour,
            ec="#555555",
            lw=0.8,
        )
    )
    axis.text(x, y, text, ha="center", va="center", fontsize=8)


def arrow(axis, start, end, colour="#555555", style="-|>", rad=0.0, lw=0.9):
    axis.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=9,
            color=colour,
            lw=lw,
            connectionstyle=f"arc3,rad={rad}",
        )
    )


def branch(axis, y, name, colour):
    labels = {"patch": f"{name}\npatch", "head": "head"}
    for stage in STAGES:
        box(axis, STAGE_X[stage], y, labels.get(stage, stage), colour)
    for left, right in zip(STAGES, STAGES[1:], strict=False):
        arrow(axis, (STAGE_X[left] + 0.55, y), (STAGE_X[right] - 0.55, y))
    output = STAGE_X["head"] + 1.6
    arrow(axis, (STAGE_X["head"] + 0.55, y), (output - 0.45, y))
    axis.text(
        output,
        y,
        "cells" if name == "cell" else "tissue",
        ha="center",
        va="center",
        fontsize=8,
        style="italic",
    )


def draw(variant: str, path: Path) -> None:
    spec = VARIANTS[variant]
    figure, axis = plt.subplots(figsize=(6.4, 2.3))
    branch(axis, CELL_Y, "cell", COLOURS["cell"])
    if has_tissue_branch(variant):
        branch(axis, TISSUE_Y, "tissue", COLOURS["tissue"])
    if spec.context == "prediction":
        # The tissue softmax, cropped to the cell box and resized, joins the cell branch.
        # Routed between the rows: down from the tissue map, left, down onto the cell branch.
        output_x, middle, x = STAGE_X["head"] + 1.6, 0.5 * TISSUE_Y, POINT_X[spec.injection]
        axis.plot(
            [output_x, output_x, x],
            [TISSUE_Y - 0.2, middle, middle],
            color=COLOURS["context"],
            lw=1.3,
        )
        arrow(axis, (x, middle), (x, CELL_Y + 0.05), COLOURS["context"], lw=1.3)
        axis.text(
            output_x - 0.1,
            middle + 0.08,
            "softmax, cropped + resized",
            color=COLOURS["context"],
            fontsize=7,
            ha="right",
            va="bottom",
        )
    elif spec.context == "ground_truth":
        box(axis, STAGE_X["patch"], TISSUE_Y, "tissue\nlabel", "#eadcf0")
        arrow(
            axis,
            (STAGE_X["patch"] + 0.3, TISSUE_Y - 0.3),
            (POINT_X["input"], CELL_Y + 0.05),
            COLOURS["label"],
            lw=1.3,
        )
        axis.text(
            POINT_X["input"] + 0.15,
            0.5 * TISSUE_Y,
            "crop + resize",
            fontsize=7,
            color=COLOURS["label"],
        )
    if spec.shares_features:
        sharing = ModelConfig(variant=variant).sharing
        for position, direction in zip(SHARING_POSITIONS, sharing, strict=True):
            x = POINT_X[position]
            if direction in ("tissue-to-cell", "both"):
                arrow(
                    axis,
                    (x - 0.1, TISSUE_Y - 0.05),
                    (x - 0.1, CELL_Y + 0.05),
                    COLOURS["context"],
                    lw=1.3,
                )
            if direction in ("cell-to-tissue", "both"):
                arrow(axis, (x + 0.1, CELL_Y + 0.05), (x + 0.1, TISSUE_Y - 0.05), "#2471a3", lw=1.3)
        axis.text(
            POINT_X["decoder"] + 1.0,
            0.5 * TISSUE_Y,
            "3x3 conv, then\ncrop (red) or\nplace + zero-pad (blue)",
            fontsize=6.5,
        )
    axis.set_title(variant, fontsize=9)
    axis.set_xlim(-0.7, STAGE_X["head"] + 2.1)
    axis.set_ylim(-0.45, TISSUE_Y + 0.45)
    axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "docs"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        path = args.out / f"model_{variant}.png"
        draw(variant, path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
