#!/usr/bin/env python
"""Draw how predict-slide tiles a slide: tissue mask, cell tiles, cores, one tissue tile.

Synthesizes a small slide (tissue in part of it), plans its tiles as predict-slide does, and draws
the low-resolution image with the tiles that show tissue (solid), those skipped (dotted), every
kept tile's core (filled), and, for one tile, its 4x tissue tile and the cell box inside it.

Usage: python scripts/plot_slide_tiling.py [OUT.png] [--seed K]
Default: docs/slides_tiling.png from seed 4.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from baseline_algorithm.slides.fields import read_thumbnail  # noqa: E402
from baseline_algorithm.slides.reader import open_slide  # noqa: E402
from baseline_algorithm.slides.run import plan_tiles  # noqa: E402
from baseline_algorithm.slides.synthetic import synthesize_slide  # noqa: E402
from baseline_algorithm.slides.tiling import tissue_box  # noqa: E402
from baseline_algorithm.slides.tissue import tissue_mask  # noqa: E402

SIZE = (5120, 3584)
TISSUE = (700, 500, 4300, 3300)


def box_patch(box, **style) -> Rectangle:
    x0, y0, x1, y1 = box
    return Rectangle((x0, y0), x1 - x0, y1 - y0, **style)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "slides_tiling.png",
    )
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tiff, _ = synthesize_slide(
            Path(scratch) / "slide.tiff", SIZE, seed=args.seed, tissue=TISSUE, progress=False
        )
        with open_slide(tiff) as slide:
            grid, kept = plan_tiles(slide, (0, 0, *SIZE), (0.2, 0.2), 64)
            thumbnail, downsample = read_thumbnail(slide, 2.0, 0.2)
            mask_image, mask_downsample = read_thumbnail(slide, 8.0, 0.2)
    mask = tissue_mask(mask_image, mask_downsample * 0.2)
    figure, axes = plt.subplots(figsize=(11, 7.8))
    axes.imshow(thumbnail, extent=(0, SIZE[0], SIZE[1], 0))
    centres = [(np.arange(n) + 0.5) * mask_downsample for n in (mask.shape[1], mask.shape[0])]
    axes.contour(*centres, mask, levels=[0.5], colors="tab:blue", linewidths=1.2)
    kept_keys = {(t.column, t.row) for t in kept}
    for tile in grid.tiles():
        if (tile.column, tile.row) in kept_keys:
            axes.add_patch(
                box_patch(grid.core(tile), facecolor="tab:green", alpha=0.12, edgecolor="none")
            )
            axes.add_patch(box_patch(tile.box, fill=False, edgecolor="black", linewidth=0.8))
        else:
            axes.add_patch(
                box_patch(tile.box, fill=False, edgecolor="grey", linewidth=0.6, linestyle=":")
            )
    example = grid.tile(1, 1)
    axes.add_patch(box_patch(example.box, fill=False, edgecolor="tab:red", linewidth=2.2))
    axes.add_patch(
        box_patch(
            tissue_box(example), fill=False, edgecolor="tab:orange", linewidth=2.2, linestyle="--"
        )
    )
    axes.set_xlim(-1200, SIZE[0] + 300)
    axes.set_ylim(SIZE[1] + 300, -900)
    axes.set_xlabel("level-0 x (px, 0.2 µm/px)")
    axes.set_ylabel("level-0 y (px)")
    axes.set_title(
        f"{len(kept)} of {grid.shape[0] * grid.shape[1]} cell tiles show tissue (blue contour); "
        "cell tiles 1024 px, overlap 64 px, cores shaded\n"
        "red: one cell tile; orange: its tissue tile (4x the field, read at 0.8 µm/px, "
        "white outside the slide): cell box (384, 384, 640, 640)",
        fontsize=10,
    )
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
