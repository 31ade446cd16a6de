"""The report's figures, drawn with matplotlib and returned as encoded image bytes.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot, no global state, no display
needed). Charts are PNG; overlays of stained tissue are JPEG, which keeps photographs small.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import patheffects
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from evaluation.confidence import ThresholdCurve
from evaluation.metrics import precision_recall_f1
from evaluation.text import for_matplotlib

__all__ = [
    "CLASS_COLOURS",
    "OUTCOME_STYLE",
    "f1_threshold_png",
    "organ_png",
    "overlay_jpeg",
    "pr_curves_png",
]

# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
CLASS_COLOURS = {"BC": "#0072B2", "TC": "#D55E00", "mF1": "#000000"}
# Outcome markers on H&E: bright colours that stand out from pink and purple stain, each with its
# own marker shape so that colour is not the only cue.
OUTCOME_STYLE = {
    "TP": {"color": "#00E676", "marker": "o", "label": "TP (prediction matched)"},
    "FP": {"color": "#FFEA00", "marker": "x", "label": "FP (prediction unmatched)"},
    "FN": {"color": "#00E5FF", "marker": "s", "label": "FN (GT point missed)"},
}
CLASS_TITLES = {"BC": "background cells (BC)", "TC": "tumour cells (TC)"}


def _encode(figure: Figure, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, **options)
    return buffer.getvalue()


def pr_curves_png(curves: dict[str, ThresholdCurve], dpi: int = 100) -> bytes:
    """Precision-recall curve of each class with the submitted and best-F1 points marked.

    Parameters
    ----------
    curves : dict
        Class name -> :class:`ThresholdCurve`.
    dpi : int
        Resolution of the PNG (the figure is 5 inches tall per row).

    Returns
    -------
    bytes
        PNG image.
    """
    figure = Figure(figsize=(5.2 * len(curves), 5.0), layout="constrained")
    axes = figure.subplots(1, len(curves), squeeze=False)[0]
    recall_grid = np.linspace(0.01, 1, 200)
    for ax, (name, curve) in zip(axes, curves.items()):
        colour = CLASS_COLOURS[name]
        for level in (0.2, 0.4, 0.6, 0.8):
            # Iso-F1 line: precision = F R / (2 R - F), defined where 2 R > F.
            valid = 2 * recall_grid > level
            recall = recall_grid[valid]
            ax.plot(
                recall, level * recall / (2 * recall - level), color="0.85", linewidth=0.8, zorder=0
            )
            ax.annotate(
                f"F1={level:.1f}",
                (1.0, level / (2 - level)),
                fontsize=7,
                color="0.6",
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
            )
        precision, recall, _ = precision_recall_f1(curve.tp, curve.fp, curve.fn)
        if len(recall):
            ax.plot(
                np.r_[0.0, recall],
                np.r_[precision[0], precision],
                color=colour,
                drawstyle="steps-pre",
                linewidth=1.8,
                label="all thresholds",
            )
            ax.plot(
                recall[-1],
                precision[-1],
                "o",
                markersize=9,
                markerfacecolor="white",
                markeredgecolor=colour,
                markeredgewidth=2,
                label=f"submitted: P {precision[-1]:.3f}, R {recall[-1]:.3f}",
            )
            best = curve.best()
            ax.plot(
                best["recall"],
                best["precision"],
                "*",
                markersize=15,
                color=colour,
                markeredgecolor="black",
                markeredgewidth=0.6,
                label=f"best F1 {best['f1']:.3f} at t = {best['threshold']:.4g}",
            )
            ax.legend(loc="lower left", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no predictions of this class", ha="center", transform=ax.transAxes)
        ax.set(
            xlim=(0, 1.0),
            ylim=(0, 1.02),
            xlabel="recall",
            ylabel="precision",
            title=f"{CLASS_TITLES[name]}: AP {curve.average_precision():.3f}",
        )
        ax.grid(alpha=0.3)
    return _encode(figure, "png", dpi=dpi)


def f1_threshold_png(curves: dict[str, ThresholdCurve], dpi: int = 100) -> bytes:
    """F1 of each class, and mF1 with one shared threshold, against the confidence threshold.

    Returns
    -------
    bytes
        PNG image; the x axis is the threshold in [0, 1] (a prediction is kept when its float32
        confidence is at least the threshold).
    """
    figure = Figure(figsize=(10.4, 4.2), layout="constrained")
    ax = figure.subplots()
    # A fine grid plus every curve point, so that each step of the step functions is drawn.
    grid = np.unique(
        np.concatenate(
            [np.linspace(0, 1, 1001)] + [curve.threshold.astype(float) for curve in curves.values()]
        )
    )
    f1 = {name: precision_recall_f1(*curve.counts_at(grid))[2] for name, curve in curves.items()}
    f1["mF1"] = np.mean(list(f1.values()), axis=0)
    for name, values in f1.items():
        k = int(np.argmax(values[::-1]))  # the highest threshold among ties
        best_threshold, best_value = grid[::-1][k], values[::-1][k]
        label = "mF1, one threshold for both classes" if name == "mF1" else f"F1 {name}"
        ax.plot(
            grid,
            values,
            color=CLASS_COLOURS[name],
            linewidth=2 if name == "mF1" else 1.5,
            linestyle="--" if name == "mF1" else "-",
            label=f"{label} (best {best_value:.3f} at {best_threshold:.4g})",
        )
        ax.plot(
            best_threshold,
            best_value,
            "*",
            markersize=13,
            color=CLASS_COLOURS[name],
            markeredgecolor="black",
            markeredgewidth=0.6,
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="confidence threshold",
        ylabel="F1",
        title="F1 against the confidence threshold (threshold 0 = the leaderboard)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    return _encode(figure, "png", dpi=dpi)


def organ_png(rows: list[dict], dpi: int = 100) -> bytes:
    """Per-organ F1 of each class and mF1 with their bootstrap intervals.

    Parameters
    ----------
    rows : list of dict
        One per group (organ, then "all images"): ``label`` (str), ``images`` (int) and, for each
        of ``F1/BC``, ``F1/TC``, ``mF1``, a dict ``{"estimate", "low", "high"}`` (floats or None).

    Returns
    -------
    bytes
        PNG image: horizontal bars with 95% interval whiskers.
    """
    keys = ("F1/BC", "F1/TC", "mF1")
    colours = (CLASS_COLOURS["BC"], CLASS_COLOURS["TC"], "0.35")
    figure = Figure(figsize=(10.4, 0.75 * len(rows) + 1.4), layout="constrained")
    ax = figure.subplots()
    height = 0.26
    for offset, (key, colour) in enumerate(zip(keys, colours)):
        positions = np.arange(len(rows)) + (offset - 1) * height
        estimate = np.array([row[key]["estimate"] or 0.0 for row in rows])
        low = np.array([row[key]["low"] if row[key]["low"] is not None else 0.0 for row in rows])
        high = np.array([row[key]["high"] if row[key]["high"] is not None else 0.0 for row in rows])
        whiskers = np.clip(np.stack([estimate - low, high - estimate]), 0, None)
        ax.barh(
            positions,
            estimate,
            height=height * 0.92,
            color=colour,
            label=key,
            xerr=whiskers,
            error_kw={"elinewidth": 1.2, "capsize": 3, "ecolor": "black"},
        )
    ax.set_yticks(
        np.arange(len(rows)),
        [
            for_matplotlib(row["label"])
            + f"\n({row['images']} image{'' if row['images'] == 1 else 's'})"
            for row in rows
        ],
    )
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 1),
        xlabel="F1 (bars) with 95% bootstrap interval over images (whiskers)",
        title="Per organ",
    )
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return _encode(figure, "png", dpi=dpi)


def _show(ax, image: np.ndarray, max_side: int) -> None:
    """Draw an RGB image at most ``max_side`` pixels wide, keeping the axes in full-size pixels.

    Block-averaging to about the displayed size first is much faster than letting matplotlib
    resample a 1024 px patch into a few hundred screen pixels, and looks the same.
    """
    height, width = image.shape[:2]
    factor = max(1, -(-max(height, width) // max_side))
    if factor > 1:
        # Pillow (a matplotlib dependency) box-averages factor x factor blocks in C.
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).reduce(factor))
    # Pixel i of the full-size image covers [i - 0.5, i + 0.5] in imshow's convention.
    ax.imshow(image, extent=(-0.5, width - 0.5, height - 0.5, -0.5), interpolation="antialiased")


def overlay_jpeg(
    cell_image: np.ndarray,
    tissue_image: np.ndarray,
    cell_box: tuple[float, float, float, float],
    outcomes: dict[str, dict],
    title: str,
    dpi: int = 90,
    quality: int = 85,
) -> bytes:
    """Tissue patch with the cell patch's box, and the cell patch with TP / FP / FN of each class.

    Parameters
    ----------
    cell_image : ndarray of uint8, shape (H, W, 3)
        Cell patch.
    tissue_image : ndarray of uint8, shape (Ht, Wt, 3)
        Tissue patch (4x the field of view).
    cell_box : (x0, y0, x1, y1)
        The cell patch in tissue-patch pixels (continuous coordinates).
    outcomes : dict
        Class name -> ``{"TP": (n, 2), "FP": (n, 2), "FN": (n, 2)`` arrays of (x, y) cell-patch
        pixels (TP: the predictions), ``"pairs": (n, 2, 2)`` segments from a TP prediction to its
        GT point, ``"caption": str``}.
    title : str
        Figure title (image name, organ, scores).

    Returns
    -------
    bytes
        JPEG image.
    """
    figure = Figure(figsize=(4.0 * (1 + len(outcomes)), 4.5), layout="constrained")
    axes = figure.subplots(1, 1 + len(outcomes))
    display_side = int(4.0 * dpi)
    _show(axes[0], tissue_image, display_side)
    x0, y0, x1, y1 = cell_box
    # imshow puts pixel i's centre at i, so continuous coordinate c is drawn at c - 0.5.
    box = Rectangle(
        (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="black", linewidth=2
    )
    box.set_path_effects([patheffects.withStroke(linewidth=4, foreground="white")])
    axes[0].add_patch(box)
    axes[0].set_title("tissue patch, cell patch boxed", fontsize=10)
    marker_size = 36 * (512 / max(cell_image.shape[:2])) ** 0.5
    for ax, (name, outcome) in zip(axes[1:], outcomes.items()):
        _show(ax, cell_image, display_side)
        ax.add_collection(
            LineCollection(
                np.asarray(outcome["pairs"]).reshape(-1, 2, 2),
                colors=OUTCOME_STYLE["TP"]["color"],
                linewidths=0.8,
            )
        )
        for kind, style in OUTCOME_STYLE.items():
            xy = np.asarray(outcome[kind]).reshape(-1, 2)
            hollow = style["marker"] != "x"
            ax.scatter(
                xy[:, 0],
                xy[:, 1],
                s=marker_size,
                marker=style["marker"],
                facecolors="none" if hollow else style["color"],
                edgecolors=style["color"] if hollow else None,
                linewidths=1.3,
                label=style["label"],
            )
        ax.set_title(f"{CLASS_TITLES[name]}\n{outcome['caption']}", fontsize=10)
    for ax in axes:
        ax.set_axis_off()
    handles, labels = axes[1].get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=3,
        fontsize=9,
        facecolor="0.3",
        labelcolor="white",
    )
    figure.suptitle(for_matplotlib(title), fontsize=11)
    return _encode(figure, "jpeg", dpi=dpi, pil_kwargs={"quality": quality})
