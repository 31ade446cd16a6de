#!/usr/bin/env python
"""Whole-slide inference measured: accuracy against patches, throughput, overhead, peak memory.

``accuracy``: for each of ``--slides`` synthetic slides (seeds 1, 2, ...) at 0.2 µm/px, a
region of interest ``--size`` px square with ``--margin`` px of tissue around it (by default the
reach of a tissue tile beyond its cell tile, so that every tile's context is tissue, as on the
platform, not white padding), the detector (the shipped baseline by default) runs twice on the
same tissue:

- as ``predict-slide`` does (overlapping tiles, cores; the region scored as one image, as
  ``score --whole-slide`` does, at 3 µm);
- as the platform's patches: the region cut into non-overlapping 1024 px pairs, each detected
  alone and scored as its own image against the ground truth inside it.

Both mF1 pool every slide (counts summed, then F1, as the leaderboard pools images). With
``--pairs N`` the detector also runs on N synthetic pairs of the generator (1024 px, the test
split's kind) for the patch-level mF1 of the pairs themselves. The slide runs give tiles per second
and the overhead: the tile loop's wall time over the time inside the detector's calls (reading,
resampling, cores and journal are the difference), and the whole run's wall time (slide opening,
tissue mask, model loading, output) over it.

``memory``: slides of ``--sides`` px square, each with the same tissue rectangle
(``--tissue`` px square near the middle, at the same place of the tile grid), glass around it,
each run by ``predict-slide`` in a fresh process; its peak resident memory (``getrusage``'s
``ru_maxrss``) against the slide's side.

Usage: python scripts/benchmark_slides.py accuracy [--slides 6] [--size 2048] [--margin 1536]
           [--pairs 0] [--json OUT]
       python scripts/benchmark_slides.py memory [--sides 10000 31623 100000] [--tissue 3072]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from baseline_algorithm.data.synthetic import synthesize_pair
from baseline_algorithm.detector import BASELINE_DETECTOR, load_detector
from baseline_algorithm.slides.reader import open_slide
from baseline_algorithm.slides.run import SlideOptions, predict_slide, tile_points
from baseline_algorithm.slides.synthetic import synthesize_slide
from baseline_algorithm.slides.tiling import TileGrid, tile_pair
from evaluation.metrics import metrics_from_counts, score
from evaluation.points import PointSet

RADIUS_PX = 15.0  # 3 µm at 0.2 µm/px


def read_points(path: Path) -> np.ndarray:
    document = json.loads(path.read_text())
    return np.array([e["point"] for e in document["points"]], dtype=np.int64).reshape(-1, 3)


def point_set(points: np.ndarray, image: np.ndarray | int = 0) -> PointSet:
    count = len(points)
    return PointSet(
        np.broadcast_to(np.asarray(image, np.int64), (count,)).copy(),
        points[:, :2].astype(np.int64),
        points[:, 2].astype(np.int64),
        np.ones(count),
    )


def patch_level(tiff: Path, roi: tuple[int, int, int, int], truth: np.ndarray, detector) -> dict:
    """Counts of the ROI cut into non-overlapping platform pairs, each scored as an image."""
    grid = TileGrid.for_slide(roi, (0.2, 0.2), 0)
    predicted, expected = [], []
    with open_slide(tiff) as slide:
        tiles = [t for t in grid.tiles() if t.box[2] <= roi[2] and t.box[3] <= roi[3]]
        for image, tile in enumerate(tiles):
            pair = tile_pair(slide, tile, (0.2, 0.2), f"image_{image}")
            found = tile_points(detector.detect_pairs([pair])[0])
            xy = np.floor(found[:, :2] + 0.5).astype(np.int64)  # to the nearest pixel
            predicted.append(point_set(np.column_stack([xy, found[:, 2]]), image))
            x0, y0, x1, y1 = (int(v) for v in tile.box)
            inside = (
                (truth[:, 0] >= x0) & (truth[:, 0] < x1) & (truth[:, 1] >= y0) & (truth[:, 1] < y1)
            )
            local = truth[inside] - np.array([x0, y0, 0])
            expected.append(point_set(local, image))
    report = score(concat(predicted), concat(expected), len(tiles), radius_px=RADIUS_PX)
    return {key: int(values.sum()) for key, values in report.counts.items()}


def concat(sets: list[PointSet]) -> PointSet:
    return PointSet(
        *(
            np.concatenate([getattr(s, f) for s in sets])
            for f in ("image", "xy", "label", "probability")
        )
    )


def pairs_level(count: int, detector) -> float:
    """Pooled mF1 of ``count`` synthetic 1024 px pairs (seed 0, the test split's numbering)."""
    predicted, expected = [], []
    for image in range(count):
        pair = synthesize_pair(f"{image + 1:03d}", 0, 1000 + image, "test")
        found = tile_points(detector.detect_pairs([pair])[0])
        xy = np.floor(found[:, :2] + 0.5).astype(np.int64)
        predicted.append(point_set(np.column_stack([xy, found[:, 2]]), image))
        expected.append(point_set(pair.cell_points, image))
    return score(concat(predicted), concat(expected), count, radius_px=RADIUS_PX).aggregates["mF1"]


def accuracy(args) -> dict:
    detector = load_detector(args.detector, device="cpu")
    slide_counts, patch_counts, runs = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        side = args.size + 2 * args.margin
        roi = (args.margin, args.margin, args.margin + args.size, args.margin + args.size)
        for seed in range(1, args.slides + 1):
            tiff, gt = synthesize_slide(
                Path(scratch) / f"s{seed}.tiff", (side, side), seed=seed, progress=False
            )
            output = Path(scratch) / f"s{seed}.json"
            run = predict_slide(
                tiff,
                SlideOptions(
                    output=output, detector=args.detector, roi=roi, device="cpu", progress=False
                ),
            )
            truth = read_points(gt)
            truth = truth[
                (truth[:, 0] >= roi[0])
                & (truth[:, 0] < roi[2])
                & (truth[:, 1] >= roi[1])
                & (truth[:, 1] < roi[3])
            ]
            report = score(point_set(read_points(output)), point_set(truth), 1, radius_px=RADIUS_PX)
            counts = {key: int(values.sum()) for key, values in report.counts.items()}
            slide_counts.append(counts)
            patch_counts.append(patch_level(tiff, roi, truth, detector))
            runs.append(
                {
                    "seed": seed,
                    "tiles": run.tiles,
                    "cells": run.cells,
                    "truth": len(truth),
                    "detector_s": run.detector_seconds,
                    "tiles_s": run.tiles_seconds,
                    "total_s": run.seconds,
                    "slide_mF1": metrics_from_counts(counts)["mF1"],
                    "patch_mF1": metrics_from_counts(patch_counts[-1])["mF1"],
                }
            )
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)

    def pooled(counts):
        return metrics_from_counts({k: sum(c[k] for c in counts) for k in counts[0]})["mF1"]

    tiles = sum(r["tiles"] for r in runs)
    inside = sum(r["detector_s"] for r in runs)
    return {
        "slide_mF1": pooled(slide_counts),
        "patch_mF1": pooled(patch_counts),
        "pairs_mF1": pairs_level(args.pairs, detector) if args.pairs else None,
        "tiles_per_s": tiles / sum(r["tiles_s"] for r in runs),
        "overhead_tile_loop": sum(r["tiles_s"] for r in runs) / inside,
        "overhead_whole_run": sum(r["total_s"] for r in runs) / inside,
        "runs": runs,
    }


def one_run(args) -> None:
    """A single predict-slide in this process; prints its peak memory (the memory subcommand)."""
    run = predict_slide(
        args.slide,
        SlideOptions(output=args.output, detector=args.detector, device="cpu", progress=False),
    )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "tiles": run.tiles,
                "cells": run.cells,
                "seconds": run.seconds,
                "peak_MiB": peak_kib / 1024,
            }
        )
    )


def memory(args) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for side in args.sides:
            # On the same place of the tile grid (stride 960 px) whatever the side: the same tiles.
            start = (side - args.tissue) // 2 // 960 * 960
            tiff, _ = synthesize_slide(
                Path(scratch) / f"m{side}.tiff",
                (side, side),
                seed=1,
                tissue=(start, start, start + args.tissue, start + args.tissue),
                progress=False,
            )
            begun = time.perf_counter()
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "_one",
                    str(tiff),
                    str(Path(scratch) / "out.json"),
                    "--detector",
                    args.detector,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            row = {
                "side_px": side,
                "file_MB": tiff.stat().st_size / 1e6,
                **json.loads(result.stdout.strip().splitlines()[-1]),
                "process_s": time.perf_counter() - begun,
            }
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
            tiff.unlink()
    return {"tissue_px": args.tissue, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    first = commands.add_parser("accuracy")
    first.add_argument("--slides", type=int, default=6)
    first.add_argument("--size", type=int, default=2048)
    first.add_argument("--margin", type=int, default=1536)
    first.add_argument("--pairs", type=int, default=0)
    second = commands.add_parser("memory")
    second.add_argument("--sides", type=int, nargs="+", default=[10_000, 31_623, 100_000])
    second.add_argument("--tissue", type=int, default=3072)
    third = commands.add_parser("_one")
    third.add_argument("slide", type=Path)
    third.add_argument("output", type=Path)
    for sub in (first, second, third):
        sub.add_argument("--detector", default=BASELINE_DETECTOR)
    for sub in (first, second):
        sub.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "_one":
        one_run(args)
        return 0
    result = {
        "command": args.command,
        "detector": args.detector,
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        **(accuracy(args) if args.command == "accuracy" else memory(args)),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
