#!/usr/bin/env python
"""Draw a synthetic slide's detections over the slide, as QuPath shows imported GeoJSON cells.

Synthesizes a 2048 px slide, runs ``predict-slide`` with ``--detector`` (the shipped baseline by
default) on a region of interest, and draws its GeoJSON points (the classification's colour) over
the slide at 0.8 µm/px, with a close-up at 0.2 µm/px where the ground truth is drawn as rings.

Usage: python scripts/plot_slide_overlay.py [OUT.png] [--seed K] [--detector MODULE:FACTORY]
Default: docs/slides_overlay.png from seed 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from baseline_algorithm.detector import BASELINE_DETECTOR  # noqa: E402
from baseline_algorithm.slides.reader import open_slide  # noqa: E402
from baseline_algorithm.slides.run import SlideOptions, predict_slide  # noqa: E402
from baseline_algorithm.slides.synthetic import synthesize_slide  # noqa: E402

SIZE = (2048, 2048)
ROI = (256, 256, 1792, 1792)
CLOSE_UP = (900, 900, 1300, 1300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "slides_overlay.png",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--detector", default=BASELINE_DETECTOR)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        tiff, truth_path = synthesize_slide(
            Path(scratch) / "slide.tiff", SIZE, seed=args.seed, progress=False
        )
        geojson = Path(scratch) / "cells.geojson"
        predict_slide(
            tiff,
            SlideOptions(
                output=Path(scratch) / "cells.json",
                geojson=geojson,
                detector=args.detector,
                roi=ROI,
                device="cpu",
                progress=False,
            ),
        )
        features = json.loads(geojson.read_text())["features"]
        truth = np.array([e["point"] for e in json.loads(truth_path.read_text())["points"]])
        with open_slide(tiff) as slide:
            overview = slide.read_region(2, 0, 0, SIZE[0] // 4, SIZE[1] // 4)
            x0, y0, x1, y1 = CLOSE_UP
            close_up = slide.read_region(0, x0, y0, x1 - x0, y1 - y0)
    xy = np.array([f["geometry"]["coordinates"] for f in features])
    colours = np.array([f["properties"]["classification"]["color"] for f in features]) / 255
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 6.6))
    left.imshow(overview, extent=(0, SIZE[0], SIZE[1], 0))
    left.scatter(xy[:, 0], xy[:, 1], s=5, c=colours, linewidths=0)
    left.add_patch(
        Rectangle(
            ROI[:2], ROI[2] - ROI[0], ROI[3] - ROI[1], fill=False, edgecolor="black", linestyle="--"
        )
    )
    left.add_patch(Rectangle(CLOSE_UP[:2], x1 - x0, y1 - y0, fill=False, edgecolor="black"))
    left.set_title(
        f"{len(features)} cells in the ROI (dashed), 0.8 µm/px; "
        "red: Tumor cell, green: Background cell",
        fontsize=9,
    )
    right.imshow(close_up, extent=(x0, x1, y1, y0))
    near = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
    right.scatter(xy[near, 0], xy[near, 1], s=22, c=colours[near], linewidths=0)
    shown = (truth[:, 0] >= x0) & (truth[:, 0] < x1) & (truth[:, 1] >= y0) & (truth[:, 1] < y1)
    ring = np.where(truth[shown, 2] == 2, "tab:red", "tab:green")
    right.scatter(
        truth[shown, 0] + 0.5,
        truth[shown, 1] + 0.5,
        s=150,
        facecolors="none",
        edgecolors=ring,
        linewidths=1.0,
    )
    right.set_title("close-up at 0.2 µm/px: detections (dots), ground truth (rings)", fontsize=9)
    for axes in (left, right):
        axes.set_xlabel("level-0 x (px)")
    left.set_ylabel("level-0 y (px)")
    figure.suptitle(
        f"predict-slide --detector {args.detector} on a synthetic slide (seed "
        f"{args.seed}), its GeoJSON drawn",
        fontsize=10,
    )
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
