#!/usr/bin/env python
"""Draw the cells that detectors find on one pair of a Grand Challenge input folder, side by side.

Panels: the tissue patch with the cell patch's box, then the cell patch with each detector's points
(BC cyan, TC yellow). Every detector runs through the same interface as ``predict``
(``MODULE:FACTORY``), and its points pass the same validity check.

Usage::

    python scripts/plot_detector_overlays.py INPUT OUT.png [--pair K] \\
        [--detector MODULE:FACTORY ...] [--device cpu]

Default detectors: the baseline and the worked example (``classical_detector:make_detector``,
found when examples/classical_detector is installed or on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

# Runnable from a checkout without installing the project or the example package.
REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "examples" / "classical_detector" / "src")]
from baseline_algorithm.data.plot import CLASS_COLOURS  # noqa: E402
from baseline_algorithm.detector import BASELINE_DETECTOR, load_detector, validated_points  # noqa: E402
from evaluation.constants import BC, CLASS_NAMES, TC  # noqa: E402
from evaluation.stacked import iter_gc_input_pairs  # noqa: E402

EXAMPLE_DETECTOR = "classical_detector:make_detector"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="Grand Challenge input folder")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--pair", type=int, default=0, help="index k of the pair (image_k)")
    parser.add_argument("--detector", action="append", default=None, metavar="MODULE:FACTORY")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    specs = args.detector or [BASELINE_DETECTOR, EXAMPLE_DETECTOR]
    pair = next(itertools.islice(iter_gc_input_pairs(args.input), args.pair, None))

    figure, axes = plt.subplots(
        1, 1 + len(specs), figsize=(6 * (1 + len(specs)), 6.6), constrained_layout=True
    )
    tissue, *cells = axes
    tissue.imshow(pair.tissue_image)
    x0, y0, x1, y1 = pair.cell_box
    tissue.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="black", lw=2)
    )
    tissue.set_title(f"tissue patch ({pair.meta.get('organ', '')}), cell box")
    for axis, spec in zip(cells, specs, strict=True):
        points = validated_points(
            spec, args.pair, load_detector(spec, device=args.device).detect(pair)
        )
        axis.imshow(pair.cell_image)
        handles = []
        for label in (BC, TC):
            xy = points.xy[points.label == label]
            axis.scatter(
                xy[:, 0], xy[:, 1], s=16, c=CLASS_COLOURS[label], edgecolors="black", linewidths=0.4
            )
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    ls="",
                    mfc=CLASS_COLOURS[label],
                    mec="black",
                    label=f"{CLASS_NAMES[label]} ({len(xy)})",
                )
            )
        axis.legend(handles=handles, loc="upper right")
        axis.set_title(spec)
    for axis in axes:
        axis.set_axis_off()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
