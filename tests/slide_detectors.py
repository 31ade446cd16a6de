"""Detectors for the whole-slide tests: an oracle that knows the ground truth, and failing ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def oracle(checkpoint: Path):
    """A detector returning the ground-truth points (a "Multiple points" file) inside its cell tile.

    The cell tile's level-0 box comes from the pair's metadata, as on the platform; the points
    come back in cell-tile pixels at the tile's resolution.
    """
    document = json.loads(Path(checkpoint).read_text())
    truth = np.array([entry["point"] for entry in document["points"]], dtype=float).reshape(-1, 3)

    def detect(pair):
        box = pair.meta["cell"]
        x0, y0, x1, y1 = (box[k] for k in ("x_start", "y_start", "x_end", "y_end"))
        height, width = pair.cell_image.shape[:2]
        # The level-0 pixel's centre, in cell-tile pixels; its index is the pixel it falls in.
        tile_x = (truth[:, 0] + 0.5 - x0) * width / (x1 - x0)
        tile_y = (truth[:, 1] + 0.5 - y0) * height / (y1 - y0)
        inside = (tile_x >= 0) & (tile_x < width) & (tile_y >= 0) & (tile_y < height)
        return [
            (float(np.floor(x)), float(np.floor(y)), int(c), 1.0)
            for x, y, c in zip(tile_x[inside], tile_y[inside], truth[inside, 2])
        ]

    return detect


def failing_on_second_tile():
    """Raises on the second pair it sees."""
    calls = []

    def detect(pair):
        calls.append(pair.name)
        if len(calls) == 2:
            raise RuntimeError("out of memory on this tile")
        return []

    return detect


def counting(checkpoint: Path):
    """Records every tile it sees (its cell box) in the file ``checkpoint``, finds nothing."""

    def detect(pair):
        with open(checkpoint, "a") as seen:
            seen.write(json.dumps(pair.meta["cell"]) + "\n")
        return []

    return detect


def tile_centres():
    """One background cell at the centre of every cell tile: fast, for runs of many slides."""

    def detect(pair):
        height, width = pair.cell_image.shape[:2]
        return [(width // 2, height // 2, 1, 0.5)]

    return detect


def interruptible_oracle(checkpoint: Path):
    """The oracle, writing each cell box it starts on to ``$SLIDE_TEST_SEEN``; with
    ``$SLIDE_TEST_STOP_AFTER`` = n it raises KeyboardInterrupt (Ctrl-C) on tile n + 1."""
    import os

    inner = oracle(checkpoint)
    stop_after = int(os.environ.get("SLIDE_TEST_STOP_AFTER", "0")) or None
    calls = []

    def detect(pair):
        with open(os.environ["SLIDE_TEST_SEEN"], "a") as seen:
            seen.write(json.dumps(pair.meta["cell"], sort_keys=True) + "\n")
        calls.append(pair.name)
        if stop_after is not None and len(calls) > stop_after:
            raise KeyboardInterrupt
        return inner(pair)

    return detect


def outside_the_tile():
    """Returns a point one pixel beyond the tile."""

    def detect(pair):
        return [(1024.0, 10.0, 1, 0.9)]

    return detect
