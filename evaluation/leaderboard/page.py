"""``leaderboard.html``: one self-contained page with the table and the stability figures.

The figures are drawn with matplotlib (``matplotlib.figure.Figure``, no pyplot state) and
embedded as base64 PNG, so the page needs no network and no other file.
"""

from __future__ import annotations

import io
from html import escape

import numpy as np
from matplotlib.colors import ListedColormap, to_rgba_array
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from evaluation.constants import CLASS_NAMES
from evaluation.html_page import FIGURE_CHECK_SCRIPT, figure, html_document
from evaluation.leaderboard.failures import failures_section
from evaluation.leaderboard.stability import RankStability, leaderboard_f1
from evaluation.text import for_matplotlib

__all__ = [
    "NAMED_SUBMISSIONS_MAX",
    "PER_IMAGE_DOTS_MAX",
    "PER_IMAGE_ROWS_MAX",
    "SIGNIFICANCE_COLOURS",
    "blob_plot_png",
    "per_image_png",
    "render_page",
    "significance_map_png",
]

#: Significance map: A significantly better than B, not significantly better, A = B.
SIGNIFICANCE_COLOURS = {"better": "#E69F00", "not": "#56B4E9", "self": "#FFFFFF"}
# Okabe-Ito hues (RGBA rows), cycled over submissions so that neighbours differ; neither the
# significance colours nor black (the median crosses) among them.
_HUES = to_rgba_array(["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#F0E442"])
#: Most submissions named along a figure's axis; beyond, the axis counts positions by rank (the
#: table names them) and the figure stops growing, so its pixels do not grow with the square of
#: the submissions.
NAMED_SUBMISSIONS_MAX = 150
#: Most rows of the per-image plot (the first by rank), and most dots drawn in it.
PER_IMAGE_ROWS_MAX = 150
PER_IMAGE_DOTS_MAX = 500_000

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 16px 24px 48px; color: #1b1b1b; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
.lead, .caption { color: #555; } .caption { font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th.text, td.text { text-align: left; }
thead th { background: #f4f4f4; position: sticky; top: 0; }
td.error { font-family: ui-monospace, monospace; font-size: 12px; text-align: left; }
.scroll { max-height: 640px; overflow: auto; border: 1px solid #e4e4e4; }
.figure { margin: 12px 0 20px; } .figure img { max-width: 100%; height: auto; display: block; }
img.broken { min-height: 40px; outline: 3px solid #c00; }
.settings td, .settings th { text-align: left; border: none; padding: 2px 12px 2px 0; }
"""


def _png(figure: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _label_size(count: int) -> float:
    """Tick-label font size that keeps ``count`` labels legible side by side."""
    return float(np.clip(260 / max(count, 1), 5, 10))


def _label_inches(labels: list[str], fontsize: float) -> float:
    """Room for the longest label plus an axis title, in inches (about 0.6 em per character)."""
    return max(len(label) for label in labels) * fontsize * 0.6 / 72 + 0.45


def _axis_labels(names: list[str], order: np.ndarray) -> list[str]:
    """Tick labels of submissions in ``order``: their names as matplotlib shows them literally
    (never mathtext), or their positions by rank when there are too many to name."""
    if len(names) > NAMED_SUBMISSIONS_MAX:
        return [str(position + 1) for position in range(len(names))]
    return [for_matplotlib(names[index]) for index in order]


def _side_inches(count: int) -> float:
    """Side of a submissions x ranks (or x submissions) grid, in inches."""
    return max(5.0, 0.14 * min(count, NAMED_SUBMISSIONS_MAX) + 2.5)


def _axis_ticks(count: int) -> np.ndarray:
    """Positions along a submissions axis that get a tick: all, or about 20 when unnamed."""
    if count <= NAMED_SUBMISSIONS_MAX:
        return np.arange(count)
    return np.unique([0, *range(int(np.ceil(count / 20)) - 1, count, int(np.ceil(count / 20)))])


def _axes(
    width: float, height: float, *, left: float, bottom: float, top: float = 0.2, right: float = 0.2
):
    """A figure of ``width`` x ``height`` inches and one axes with these margins in inches.

    Fixed margins instead of a layout engine: with a hundred tick labels on an axis, layout
    engines measure every label several times and take seconds.
    """
    figure = Figure(figsize=(width, height))
    ax = figure.add_axes(
        (left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height)
    )
    return figure, ax


def blob_plot_png(names: list[str], stability: RankStability, dpi: int = 100) -> bytes:
    """Blob plot: rank frequencies per submission, median rank and 95% rank interval marked.

    Parameters
    ----------
    names : list of str, length S
        Submission names, in the order of ``stability``'s rows.
    stability : RankStability
    dpi : int

    Returns
    -------
    bytes
        PNG: submissions by rank along x, rank along y (1 at the top); each blob's area is
        proportional to the fraction of replicates with that rank (the largest fraction fills
        one grid cell).
    """
    order = np.lexsort((np.array(names, dtype=object), stability.rank))
    count = len(names)
    side = _side_inches(count)
    labels = _axis_labels(names, order)
    ticks = _axis_ticks(count)
    fontsize = _label_size(len(ticks))
    margin = _label_inches([labels[tick] for tick in ticks], fontsize)
    figure, ax = _axes(side + 1.0, side + margin, left=0.8, bottom=margin)
    cell_area = (72 * side / (count + 1)) ** 2 * 0.9  # points^2 of one rank x submission cell
    frequency = stability.rank_frequency[order]
    column, rank_index = np.nonzero(frequency)
    # Area proportional to frequency, the most frequent rank of all filling its cell: with many
    # submissions the frequencies spread over many ranks and would otherwise be specks.
    area = frequency[column, rank_index] / frequency.max() * cell_area
    # One call per kind of mark: matplotlib's cost grows with the number of artists.
    ax.vlines(
        np.arange(count), *stability.rank_interval[order].T, color="black", linewidth=0.9, zorder=1
    )
    ax.scatter(
        column,
        rank_index + 1,
        s=area,
        color=_HUES[column % len(_HUES)],
        alpha=0.75,
        linewidths=0,
        zorder=2,
    )
    ax.plot(
        np.arange(count),
        stability.rank_median[order],
        linestyle="none",
        marker="x",
        color="black",
        markersize=max(3.0, 60 / count + 2),
        markeredgewidth=1.4,
        zorder=3,
    )
    ax.plot([0, count - 1], [1, count], color="0.8", linewidth=0.8, zorder=0)
    ax.set_xticks(ticks, [labels[tick] for tick in ticks], rotation=90, fontsize=fontsize)
    step = int(np.ceil(count / 20))  # at most about 20 ticks: rank 1, then multiples of step
    ax.set_yticks(np.unique([1, *range(step, count + 1, step)]))
    ax.set_xlim(-0.7, count - 0.3)
    ax.set_ylim(count + 0.7, 0.3)
    ax.set_xlabel(
        "submission (by rank on all images)"
        if count <= NAMED_SUBMISSIONS_MAX
        else "position by rank on all images (the table names each)"
    )
    ax.set_ylabel("rank in bootstrap replicates")
    ax.grid(axis="y", color="0.93", zorder=0)
    return _png(figure, dpi)


def significance_map_png(names: list[str], stability: RankStability, dpi: int = 100) -> bytes:
    """Significance map: is the row's submission significantly better than the column's?

    Returns
    -------
    bytes
        PNG of an S x S grid, submissions by rank on both axes; cell (A, B) is coloured
        ``SIGNIFICANCE_COLOURS["better"]`` where A's mF1 is significantly higher than B's
        (Holm-corrected, level ``stability.alpha``), ``"not"`` elsewhere.
    """
    order = np.lexsort((np.array(names, dtype=object), stability.rank))
    count = len(names)
    grid = np.where(stability.significant[np.ix_(order, order)], 1, 0)
    np.fill_diagonal(grid, 2)
    side = _side_inches(count)
    labels = _axis_labels(names, order)
    ticks = _axis_ticks(count)
    fontsize = _label_size(len(ticks))
    margin = _label_inches([labels[tick] for tick in ticks], fontsize)
    figure, ax = _axes(
        side + margin, side + margin + 0.5, left=margin + 0.2, bottom=margin, top=0.6
    )
    colours = ListedColormap([SIGNIFICANCE_COLOURS[key] for key in ("not", "better", "self")])
    ax.imshow(grid, cmap=colours, vmin=0, vmax=2, interpolation="nearest")
    if count <= 40:  # cell borders help reading small maps; on large ones they hide the colour
        ax.set_xticks(np.arange(count + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(count + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=0.8)
        ax.tick_params(which="minor", length=0)
    tick_labels = [labels[tick] for tick in ticks]
    ax.set_xticks(ticks, tick_labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, tick_labels, fontsize=fontsize)
    ax.set_xlabel("B")
    ax.set_ylabel("A", rotation=0, labelpad=10)
    ax.legend(
        handles=[
            Patch(
                color=SIGNIFICANCE_COLOURS["better"],
                label=f"A significantly better than B (Holm, α = {stability.alpha:g})",
            ),
            Patch(color=SIGNIFICANCE_COLOURS["not"], label="not significantly better"),
        ],
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncols=2,
        frameon=False,
        fontsize=9,
    )
    return _png(figure, dpi)


def per_image_png(
    names: list[str], stability: RankStability, counts: np.ndarray, dpi: int = 100
) -> bytes:
    """Dot-and-box plot of each submission's per-image mF1, submissions by rank, top to bottom.

    Parameters
    ----------
    names : list of str, length S
    stability : RankStability
    counts : ndarray of int, shape (S, N, C, 3)
        Per-image counts of each submission.

    Returns
    -------
    bytes
        PNG: one row per submission (the first ``PER_IMAGE_ROWS_MAX`` by rank), a box (quartiles,
        whiskers at 1.5 IQR) over a dot per image; the dots are left out when there would be
        more than ``PER_IMAGE_DOTS_MAX``.
    """
    order = np.lexsort((np.array(names, dtype=object), stability.rank))[:PER_IMAGE_ROWS_MAX]
    count = len(order)
    per_image_mf1 = leaderboard_f1(counts[order])[..., -1]
    labels = [f"{stability.rank[index]}. {for_matplotlib(names[index])}" for index in order]
    fontsize = min(10.0, _label_size(count) + 2)
    margin = _label_inches(labels, fontsize)
    figure, ax = _axes(
        9.0 + margin, max(2.5, 0.28 * count + 1.2), left=margin, bottom=0.6, right=0.3
    )
    if per_image_mf1.size <= PER_IMAGE_DOTS_MAX:
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, per_image_mf1.shape[1])
        rows = np.repeat(np.arange(count), per_image_mf1.shape[1])
        ax.scatter(
            per_image_mf1.ravel(),
            rows + np.tile(jitter, count),
            s=9,
            color=_HUES[rows % len(_HUES)],
            alpha=0.6,
            linewidths=0,
            zorder=1,
        )
    ax.boxplot(
        list(per_image_mf1),
        positions=np.arange(count),
        orientation="horizontal",
        widths=0.6,
        showfliers=False,
        zorder=2,
        medianprops={"color": "black", "linewidth": 1.6},
        boxprops={"linewidth": 1.0},
        whiskerprops={"linewidth": 1.0},
    )
    ax.set_yticks(range(count), labels, fontsize=fontsize)
    ax.set_ylim(count - 0.4, -0.6)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("mF1 of one image")
    ax.grid(axis="x", color="0.9")
    return _png(figure, dpi)


def _number(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _ranking_table(document: dict) -> str:
    header = (
        "<tr><th>rank</th><th class='text'>submission</th><th>mF1</th>"
        + "".join(f"<th>F1/{name}</th>" for name in CLASS_NAMES.values())
        + "".join(f"<th>Pre/{name}</th><th>Rec/{name}</th>" for name in CLASS_NAMES.values())
        + "<th>median rank</th><th>95% rank interval</th>"
        "<th>significantly better than</th></tr>"
    )
    rows = []
    for entry in document["entries"]:
        if entry["status"] != "scored":
            continue
        better = sum(document["significant"][entry["name"]].values())
        low, high = entry["rank_interval"]
        rows.append(
            f"<tr><td>{entry['rank']}</td><td class='text'>{escape(entry['name'])}</td>"
            f"<td><b>{entry['mF1']:.5g}</b></td>"
            + "".join(f"<td>{_number(entry[f'F1/{name}'])}</td>" for name in CLASS_NAMES.values())
            + "".join(
                f"<td>{_number(entry[f'Pre/{name}'])}</td><td>{_number(entry[f'Rec/{name}'])}</td>"
                for name in CLASS_NAMES.values()
            )
            + f"<td>{entry['rank_median']:g}</td><td>{low} – {high}</td><td>{better}</td></tr>"
        )
    return (
        f"<div class='scroll'><table><thead>{header}</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _failed_table(document: dict) -> str:
    rows = [
        f"<tr><td class='text'>{escape(entry['name'])}</td>"
        f"<td class='error'>{escape(entry['error'])}</td></tr>"
        for entry in document["entries"]
        if entry["status"] == "failed"
    ]
    if not rows:
        return ""
    return (
        "<h2>Failed submissions</h2><p class='lead'>Not ranked: each could not be read or "
        "breaks the submission format.</p><table><thead><tr><th class='text'>submission"
        "</th><th class='text'>error</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _organ_table(document: dict) -> str:
    per_organ = document.get("per_organ")
    if not per_organ:
        return ""
    organs = list(per_organ)
    cells = {
        organ: {entry["name"]: entry for entry in ranking["entries"]}
        for organ, ranking in per_organ.items()
    }
    header = (
        "<tr><th class='text'>submission</th>"
        + "".join(
            f"<th>{escape(organ)} ({per_organ[organ]['images']} images)</th>" for organ in organs
        )
        + "</tr>"
    )
    rows = []
    for entry in document["entries"]:
        if entry["status"] != "scored":
            continue
        row = "".join(
            f"<td>{cells[organ][entry['name']]['rank']} "
            f"<span class='caption'>({cells[organ][entry['name']]['mF1']:.4f})</span>"
            "</td>"
            for organ in organs
        )
        rows.append(f"<tr><td class='text'>{escape(entry['name'])}</td>{row}</tr>")
    return (
        "<h2>Ranking per organ</h2><p class='lead'>Rank within each organ by the mF1 over "
        "that organ's images (in brackets).</p><div class='scroll'><table><thead>"
        f"{header}</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _settings_table(settings: dict) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(key))}</th><td>{escape(str(value))}</td></tr>"
        for key, value in settings.items()
    )
    return f"<table class='settings'>{rows}</table>"


def render_page(
    document: dict,
    names: list[str],
    stability: RankStability | None,
    counts: np.ndarray | None,
    *,
    rare: RankStability | None = None,
) -> str:
    """The HTML page of a leaderboard.

    Parameters
    ----------
    document : dict
        :func:`evaluation.leaderboard.document.leaderboard_document`.
    names : list of str, length S
        Names of the scored submissions, in the order of ``stability``'s rows.
    stability : RankStability or None
        None when no submission was scored (the page then lists the failures only).
    counts : ndarray of int, shape (S, N, C, 3), or None
        Per-image counts of the scored submissions, for the per-image plot.
    rare : RankStability, optional
        The ranking on the rare cell-tissue pairings (same rows as ``stability``).

    Returns
    -------
    str
        A complete HTML document.
    """
    settings = document["settings"]
    scored = len(names)
    failed = sum(entry["status"] == "failed" for entry in document["entries"])
    tau = document["kendall_tau"]
    lead = (
        f"{scored} submissions ranked, {failed} failed; {settings['num_images']} test images; "
        f"{settings['replicates']} paired bootstrap replicates of the images "
        f"(seed {settings['seed']}). Mean Kendall's τ between the replicate rankings and the "
        f"ranking on all images: {'n/a' if tau is None else f'{tau:.3f}'}."
    )
    parts = [f"<h1>Leaderboard</h1><p class='lead'>{escape(lead)}</p>"]
    if stability is not None:
        parts += [
            "<h2>Ranking</h2>",
            "<p class='caption'>By mF1 on all images, highest first; equal mF1 share the best "
            "rank (1, 1, 3). Median rank and 95% interval of the rank over the bootstrap "
            "replicates. The last column counts the submissions this one is significantly "
            "better than.</p>",
            _ranking_table(document),
        ]
    parts.append(_failed_table(document))
    if stability is not None:
        parts += [
            "<h2>Rank stability</h2>",
            figure(
                blob_plot_png(names, stability),
                "blob plot of bootstrap ranks",
                "Blob plot: each blob's area is proportional to the fraction of "
                "replicates in which the submission takes that rank (the largest, "
                f"{stability.rank_frequency.max():.0%}, fills its cell); the cross "
                "marks the median rank and the black line the 95% rank interval. "
                "The grey diagonal is the ranking on all images.",
            ),
            "<h2>Significance map</h2>",
            figure(
                significance_map_png(names, stability),
                "significance map",
                "One-sided paired-bootstrap test of “A is better than B” for every "
                "ordered pair, Holm-corrected over all pairs at level "
                f"{stability.alpha:g}. Rows and columns by rank.",
            ),
            _organ_table(document),
            failures_section(
                document,
                None
                if rare is None
                else figure(
                    blob_plot_png(names, rare),
                    "blob plot of bootstrap ranks on the rare pairings",
                    "Blob plot of the rare-pairing ranking, as above: blob area the fraction of "
                    "replicates with that rank, cross the median rank, black line the 95% rank "
                    "interval; submissions by rare-pairing rank.",
                ),
            ),
            "<h2>Per-image mF1</h2>",
            figure(
                per_image_png(names, stability, counts),
                "per-image mF1",
                "Each dot is one image's mF1 (the mean of its two classes' F1, "
                "computed on that image alone); the box spans the quartiles, the whiskers "
                "1.5 interquartile ranges. Submissions by rank"
                + (f" (the first {PER_IMAGE_ROWS_MAX})" if scored > PER_IMAGE_ROWS_MAX else "")
                + (
                    ""
                    if min(scored, PER_IMAGE_ROWS_MAX) * counts.shape[1] <= PER_IMAGE_DOTS_MAX
                    else "; too many images to draw each as a dot"
                )
                + ".",
            ),
        ]
    parts += ["<h2>Settings</h2>", _settings_table(settings)]
    return html_document("Leaderboard", _STYLE, "".join(parts), FIGURE_CHECK_SCRIPT)
