"""Assemble the report: analyse, draw, render, write (each file replaced atomically)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluation.constants import CLASS_NAMES, MATCH_RADIUS_PX
from evaluation.files import check_output_set, write_output_set
from evaluation.points import PointSet
from evaluation.report.analysis import Analysis, analyse, image_rows
from evaluation.report.failures import stratum_f1_png
from evaluation.report.figures import f1_threshold_png, organ_png, overlay_jpeg, pr_curves_png
from evaluation.report.images import image_pairs
from evaluation.report.page import render_page
from evaluation.tissue import TissueMaps

__all__ = ["REPORT_FILES", "write_report"]

#: What ``write_report`` writes into the output folder.
REPORT_FILES = (
    "report.html",
    "report.json",
    "pr_curves.png",
    "f1_threshold.png",
    "per_organ.png",
    "tissue_strata.png",
)


def write_report(
    predictions: PointSet,
    ground_truth: PointSet,
    num_images: int,
    out_dir: str | os.PathLike,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    matching: str = "greedy",
    organs: Sequence[str] | None = None,
    images: str | os.PathLike | None = None,
    split: str | None = None,
    tissue: TissueMaps | None = None,
    replicates: int = 1000,
    seed: int = 0,
    sources: dict[str, str] | None = None,
    progress: bool = True,
    inputs: Sequence[str | os.PathLike] = (),
) -> Analysis:
    """Write ``report.html`` (self-contained), ``report.json`` and the chart PNGs to ``out_dir``.

    The files are written as one set (:func:`evaluation.files.write_output_set`): every
    target is checked before any is written, and none replaces one of ``inputs``.

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
    tissue : TissueMaps, optional
        Tissue of every image: adds the tissue strata and their chart.
    replicates, seed : int
        Bootstrap settings.
    sources : dict, optional
        Label -> path of the inputs, shown in the page header.
    progress : bool
        Show a progress bar while drawing overlays.
    inputs : sequence of path-like
        The files the report is made from.

    Returns
    -------
    Analysis
        The numbers shown.
    """
    # Check the outputs and the images folder before the slow part; read no image yet.
    check_output_set(out_dir, REPORT_FILES, inputs=inputs)
    pairs = (
        None if images is None else image_pairs(Path(images), num_images=num_images, split=split)
    )
    analysis = analyse(
        predictions,
        ground_truth,
        num_images,
        radius_px=radius_px,
        matching=matching,
        organs=organs,
        tissue=tissue,
        replicates=replicates,
        seed=seed,
    )
    document = analysis.to_dict()
    rows = image_rows(analysis)
    figures = {"pr": pr_curves_png(analysis.curves), "threshold": f1_threshold_png(analysis.curves)}
    if analysis.organ_intervals is not None:
        figures["organ"] = organ_png(_organ_chart_rows(analysis))
    if "tissue" in document["analysis"]:
        figures["strata"] = stratum_f1_png(document["analysis"])
    overlays = (
        []
        if pairs is None
        else _overlays(analysis, predictions, ground_truth, rows, pairs, progress)
    )
    html = render_page(document, rows, figures, overlays, sources or {})

    # One set: a chart this run does not draw is removed, never left stale beside new numbers.
    write_output_set(
        out_dir,
        {
            "report.html": html.encode("utf-8"),
            "report.json": (json.dumps(document, allow_nan=False) + "\n").encode("utf-8"),
            "pr_curves.png": figures["pr"],
            "f1_threshold.png": figures["threshold"],
            "per_organ.png": figures.get("organ"),
            "tissue_strata.png": figures.get("strata"),
        },
        inputs=inputs,
    )
    return analysis


def _organ_chart_rows(analysis: Analysis) -> list[dict]:
    rows = [{"label": organ, **intervals} for organ, intervals in analysis.organ_intervals.items()]
    rows.append({"label": "all images", **analysis.intervals})
    return rows


def _overlays(
    analysis: Analysis,
    predictions: PointSet,
    ground_truth: PointSet,
    rows: list[dict],
    pairs,
    progress: bool,
) -> list:
    from tqdm import tqdm  # progress of the slow part only

    num_images = analysis.settings["num_images"]
    gt_matched = np.zeros(len(ground_truth), dtype=bool)
    gt_matched[analysis.matched[analysis.matched >= 0]] = True
    overlays = []
    for image, pair in enumerate(
        tqdm(pairs, total=num_images, desc="overlays", unit="image", disable=not progress)
    ):
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
                "pairs": np.stack(
                    [
                        predictions.xy[pred_rows[is_tp]],
                        ground_truth.xy[analysis.matched[pred_rows[is_tp]]],
                    ],
                    axis=1,
                ),
                "caption": (
                    f"TP {row[f'TP/{name}']} · FP {row[f'FP/{name}']} · "
                    f"FN {row[f'FN/{name}']} · F1 "
                    + ("–" if row[f"F1/{name}"] is None else f"{row[f'F1/{name}']:.4f}")
                ),
            }
        name = f"image_{image}"
        title = " · ".join(
            part
            for part in (
                name if pair.name == name else f"{name} ({pair.name})",
                rows[image].get("organ") or pair.meta.get("organ"),
                None if rows[image]["mF1"] is None else f"mF1 {rows[image]['mF1']:.4f}",
            )
            if part
        )
        overlays.append(
            (name, overlay_jpeg(pair.cell_image, pair.tissue_image, pair.cell_box, outcomes, title))
        )
    return overlays
