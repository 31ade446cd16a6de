"""Assemble the report: analyse, draw, render, write (each file replaced atomically)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.constants import CLASS_NAMES, MATCH_RADIUS_PX
from evaluation.formats import PointSet, write_bytes_atomic, write_json_atomic
from evaluation.report.analysis import Analysis, analyse, image_rows
from evaluation.report.figures import f1_threshold_png, organ_png, overlay_jpeg, pr_curves_png
from evaluation.report.images import image_pairs
from evaluation.report.page import render_page

__all__ = ["REPORT_FILES", "write_report"]

#: What ``write_report`` writes into the output folder.
REPORT_FILES = ("report.html", "report.json", "pr_curves.png", "f1_threshold.png", "per_organ.png")


def write_report(predictions: PointSet, ground_truth: PointSet, num_images: int,
                 out_dir: str | os.PathLike, *, radius_px: float = MATCH_RADIUS_PX,
                 matching: str = "greedy",
                 organs: Sequence[str] | None = None, images: str | os.PathLike | None = None,
                 split: str | None = None, replicates: int = 1000, seed: int = 0,
                 sources: dict[str, str] | None = None, progress: bool = True) -> Analysis:
    """Write ``report.html`` (self-contained), ``report.json`` and the chart PNGs to ``out_dir``.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        Points of images ``0..num_images-1`` (pixels of the cell patches).
    num_images : int
    out_dir : path-like
        Created if missing; existing report files are replaced.
    radius_px : float
        Matching cutoff in pixels.
    matching : {"greedy", "hungarian"}
    organs : sequence of str, optional
        Organ of each image (per-organ chart and intervals).
    images : path-like, optional
        Grand Challenge input folder or release folder: adds an overlay per image.
    split : str, optional
        Split of a release folder given as ``images``.
    replicates, seed : int
        Bootstrap settings.
    sources : dict, optional
        Label -> path of the inputs, shown in the page header.
    progress : bool
        Show a progress bar while drawing overlays.

    Returns
    -------
    Analysis
        The numbers shown.
    """
    # Check the images folder before the slow part, and read nothing from it yet.
    pairs = None if images is None else image_pairs(Path(images), num_images=num_images,
                                                    split=split)
    analysis = analyse(predictions, ground_truth, num_images, radius_px=radius_px,
                       matching=matching, organs=organs, replicates=replicates, seed=seed)
    document = analysis.to_dict()
    rows = image_rows(analysis)
    figures = {"pr": pr_curves_png(analysis.curves), "threshold": f1_threshold_png(analysis.curves)}
    if analysis.organ_intervals is not None:
        figures["organ"] = organ_png(_organ_chart_rows(analysis))
    overlays = [] if pairs is None else _overlays(analysis, predictions, ground_truth, rows,
                                                  pairs, progress)
    html = render_page(document, rows, figures, overlays, sources or {})

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "report.json", document)
    for name, key in (("pr_curves.png", "pr"), ("f1_threshold.png", "threshold"),
                      ("per_organ.png", "organ")):
        if key in figures:
            write_bytes_atomic(out_dir / name, figures[key])
        else:
            (out_dir / name).unlink(missing_ok=True)  # never leave a stale chart beside new numbers
    write_bytes_atomic(out_dir / "report.html", html.encode("utf-8"))
    return analysis


def _organ_chart_rows(analysis: Analysis) -> list[dict]:
    rows = [{"label": organ, **intervals}
            for organ, intervals in analysis.organ_intervals.items()]
    rows.append({"label": "all images", **analysis.intervals})
    return rows


def _overlays(analysis: Analysis, predictions: PointSet, ground_truth: PointSet,
              rows: list[dict], pairs, progress: bool) -> list:
    from tqdm import tqdm  # progress of the slow part only

    num_images = analysis.settings["num_images"]
    gt_matched = np.zeros(len(ground_truth), dtype=bool)
    gt_matched[analysis.matched[analysis.matched >= 0]] = True
    overlays = []
    for image, pair in enumerate(tqdm(pairs, total=num_images, desc="overlays", unit="image",
                                      disable=not progress)):
        outcomes = {}
        for label, name in CLASS_NAMES.items():
            pred_rows = np.flatnonzero((predictions.image == image) & (predictions.label == label))
            gt_rows = np.flatnonzero((ground_truth.image == image) & (ground_truth.label == label))
            is_tp = analysis.matched[pred_rows] >= 0
            row = rows[image]
            outcomes[name] = {
                "TP": predictions.xy[pred_rows[is_tp]],
                "FP": predictions.xy[pred_rows[~is_tp]],
                "FN": ground_truth.xy[gt_rows[~gt_matched[gt_rows]]],
                "pairs": np.stack([predictions.xy[pred_rows[is_tp]],
                                   ground_truth.xy[analysis.matched[pred_rows[is_tp]]]], axis=1),
                "caption": (f"TP {row[f'TP/{name}']} · FP {row[f'FP/{name}']} · "
                            f"FN {row[f'FN/{name}']} · F1 "
                            + ("–" if row[f"F1/{name}"] is None else f"{row[f'F1/{name}']:.4f}")),
            }
        name = f"image_{image}"
        title = " · ".join(part for part in (
            name if pair.name == name else f"{name} ({pair.name})",
            rows[image].get("organ") or pair.meta.get("organ"),
            None if rows[image]["mF1"] is None else f"mF1 {rows[image]['mF1']:.4f}") if part)
        overlays.append((name, overlay_jpeg(pair.cell_image, pair.tissue_image, pair.cell_box,
                                            outcomes, title)))
    return overlays

