"""The self-contained HTML page: tables, embedded figures, a tiny table sorter; no network."""

from __future__ import annotations

from html import escape

import numpy as np

from evaluation.bootstrap import STATISTICS
from evaluation.constants import CLASS_NAMES
from evaluation.html_page import FIGURE_CHECK_SCRIPT, embedded_image, figure, html_document
from evaluation.report.failures import failures_section

__all__ = ["render_page"]

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 16px 24px 48px; color: #1b1b1b; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f4; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
td.na { color: #aaa; } td.text { text-align: left; } h3 { margin-top: 20px; }
.figure { margin: 12px 0 20px; } .figure img { max-width: 100%; height: auto; display: block; }
.caption { color: #555; font-size: 13px; margin-top: 4px; }
.settings td, .settings th { text-align: left; border: none; padding: 2px 12px 2px 0; }
.scroll { max-height: 560px; overflow-y: auto; border: 1px solid #e4e4e4; }
.overlay { margin: 16px 0 28px; }
img.broken { min-height: 40px; outline: 3px solid #c00; }
"""

# Clicking a header sorts by that column (numbers by value, empty cells last); again reverses.
_TABLE_SORTER = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") === "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var nx = Number(x), ny = Number(y);
        var order = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _number(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _interval(entry: dict | None) -> str:
    if entry is None or entry.get("low") is None:
        return "n/a"
    return f"{entry['low']:.4f} – {entry['high']:.4f}"


def _threshold(value: float) -> str:
    """A float32 threshold in its shortest exact form (0.3766, not 0.3765999972820282)."""
    return np.format_float_positional(np.float32(value), trim="-")


def _cell(value, digits: int | None = None) -> str:
    """A sortable table cell: the raw value in data-value, the formatted one shown."""
    if value is None:
        return '<td class="na" data-value="">–</td>'
    shown = f"{value:.{digits}f}" if digits is not None else str(value)
    return f'<td data-value="{escape(str(value))}">{escape(shown)}</td>'


def _summary_table(document: dict) -> str:
    aggregates = document["aggregates"]
    intervals = document["intervals"]
    rows = []
    for name in CLASS_NAMES.values():
        summary = document["classes"][name]
        best = summary["best"]
        best_text = (
            "n/a"
            if best["threshold"] is None
            else f"{best['f1']:.4f} at {_threshold(best['threshold'])}"
        )
        rows.append(
            f"<tr><td>{name}</td><td>{aggregates[f'Pre/{name}']:.4f}</td>"
            f"<td>{aggregates[f'Rec/{name}']:.4f}</td>"
            f"<td><b>{aggregates[f'F1/{name}']:.4f}</b></td>"
            f"<td>{_interval(intervals[f'F1/{name}'])}</td>"
            f"<td>{aggregates[f'TP/{name}']}</td><td>{aggregates[f'FP/{name}']}</td>"
            f"<td>{aggregates[f'FN/{name}']}</td><td>{summary['average_precision']:.4f}</td>"
            f"<td>{best_text}</td></tr>"
        )
    shared = document["shared_threshold"]
    shared_text = (
        "n/a"
        if shared["threshold"] is None
        else f"{shared['mF1']:.4f} at {_threshold(shared['threshold'])}"
    )
    rows.append(
        f"<tr><td>mF1</td><td></td><td></td><td><b>{aggregates['mF1']:.5g}</b></td>"
        f"<td>{_interval(intervals['mF1'])}</td><td></td><td></td><td></td><td></td>"
        f"<td>{shared_text}</td></tr>"
    )
    header = (
        "<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
        "<th>95% interval</th><th>TP</th><th>FP</th><th>FN</th><th>AP</th>"
        "<th>best F1 at threshold</th></tr>"
    )
    per_class_best = sum(
        document["classes"][name]["best"]["f1"] for name in CLASS_NAMES.values()
    ) / len(CLASS_NAMES)
    return (
        f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"
        "<p class='caption'>Precision, recall, F1 and mF1 are the leaderboard's (every "
        "prediction kept). The mF1 row's best threshold applies one threshold to both "
        f"classes; a threshold per class would reach mF1 {per_class_best:.4f}.</p>"
    )


def _organ_table(document: dict) -> str:
    organ_intervals = document["organ_intervals"]
    rows = []
    for organ, metrics in document["per_organ"].items():
        cells = "".join(
            f"<td>{metrics[key]:.4f} <span class='caption'>"
            f"({_interval(organ_intervals[organ][key])})</span></td>"
            for key in STATISTICS
        )
        rows.append(f"<tr><td>{escape(organ)}</td><td>{metrics['images']}</td>{cells}</tr>")
    header = (
        "<tr><th>organ</th><th>images</th>"
        + "".join(f"<th>{key} (95% interval)</th>" for key in STATISTICS)
        + "</tr>"
    )
    return f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"


def _image_table(rows: list[dict], overlay_names: set[str]) -> str:
    has_organ = any("organ" in row for row in rows)
    header = ["image"] + (["organ"] if has_organ else [])
    for name in CLASS_NAMES.values():
        header += [f"TP {name}", f"FP {name}", f"FN {name}", f"F1 {name}"]
    header.append("mF1")
    body = []
    for row in rows:
        name = row["name"]
        index = name.split("_", 1)[1]
        label = (
            f'<a href="#overlay-{escape(name)}">{escape(name)}</a>'
            if name in overlay_names
            else escape(name)
        )
        cells = [f'<td data-value="{escape(index)}">{label}</td>']
        if has_organ:
            cells.append(_cell(row.get("organ")))
        for class_name in CLASS_NAMES.values():
            cells += [_cell(row[f"{kind}/{class_name}"]) for kind in ("TP", "FP", "FN")]
            cells.append(_cell(row[f"F1/{class_name}"], 4))
        cells.append(_cell(row["mF1"], 4))
        body.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(title)}</th>" for title in header)
    return (
        f'<div class="scroll"><table class="sortable" id="images"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def render_page(
    document: dict,
    rows: list[dict],
    figures: dict[str, bytes],
    overlays: list[tuple[str, bytes]],
    sources: dict[str, str],
) -> str:
    """The report as one HTML string with every image embedded.

    Parameters
    ----------
    document : dict
        :meth:`evaluation.report.analysis.Analysis.to_dict`.
    rows : list of dict
        Per-image rows (:func:`evaluation.report.analysis.image_rows`).
    figures : dict
        ``"pr"``, ``"threshold"`` and optionally ``"organ"`` and ``"strata"`` -> PNG bytes.
    overlays : list of (image name, JPEG bytes)
        Overlays in image order; empty without ``--images``.
    sources : dict
        What was read (``predictions``, ``ground truth``, ...) -> path, shown in the header.

    Returns
    -------
    str
        The HTML document.
    """
    settings = document["settings"]
    num_images = settings["num_images"]
    setting_rows = [
        *sources.items(),
        (
            "matching",
            f"{settings['matching']} within {settings['radius_px']:g} px"
            + (
                " (the challenge's rule)"
                if settings["matching"] == "greedy"
                else " (optimal pairing; not the leaderboard's rule)"
            ),
        ),
        ("images", str(num_images)),
        (
            "intervals",
            f"{settings['confidence']:.0%} percentile bootstrap over images, "
            f"{settings['replicates']} replicates, seed {settings['seed']}",
        ),
    ]
    parts = [
        "<h1>OCELOT cell detection report</h1>",
        "<p class='lead'>Leaderboard numbers keep every prediction (threshold 0); the curves show "
        "what a confidence threshold would change. A prediction is kept when its float32 "
        "confidence is at least the threshold.</p>",
        "<table class='settings'>"
        + "".join(
            f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>"
            for key, value in setting_rows
        )
        + "</table>",
        "<h2>Summary</h2>",
        _summary_table(document),
        "<h2>Confidence</h2>",
        figure(
            figures["pr"],
            "precision-recall curves per class",
            "Precision against recall as the threshold falls from the highest confidence to 0. "
            "Circle: the submitted predictions (threshold 0, what the leaderboard scores). "
            "Star: the threshold with the best F1. Grey: lines of equal F1.",
        ),
        figure(
            figures["threshold"],
            "F1 against the confidence threshold",
            "F1 of each class and mF1 (one threshold for both classes) when only predictions "
            "at or above the threshold are kept; stars mark the best thresholds.",
        ),
    ]
    parts.append("<h2>Per organ</h2>")
    if "organ" in figures:
        parts += [
            figure(
                figures["organ"],
                "F1 per organ with 95% intervals",
                "Bars: F1 over the organ's images (micro-averaged). Whiskers: 95% "
                "bootstrap interval, resampling that organ's images.",
            ),
            _organ_table(document),
        ]
    else:
        parts.append(
            "<p>Organs unknown: pass <code>--metadata</code> (release metadata.json or a "
            "Grand Challenge metadata list) or <code>--images</code> to see them.</p>"
        )
    parts.append(
        failures_section(
            document,
            figure(
                figures["strata"],
                "F1 per class and tissue stratum with 95% intervals",
                "Bars: F1 of each class over the cells in that tissue (leaderboard matching). "
                "Whiskers: 95% bootstrap interval over images. Hatched: the rare pairings.",
            )
            if "strata" in figures
            else None,
        )
    )
    parts += [
        "<h2>Per image</h2>",
        "<p class='caption'>Click a column header to sort (again to reverse). A class with "
        "neither predictions nor ground truth in an image has no F1 (–); the image's mF1 "
        "is the mean over the classes it has.</p>",
        _image_table(rows, {name for name, _ in overlays}),
    ]
    if overlays:
        parts.append(
            "<h2>Overlays</h2><p class='caption'>Left: the tissue patch with the cell "
            "patch's field of view boxed. Then the cell patch per class: matched "
            "predictions (TP, circles, linked to their GT point), unmatched predictions "
            "(FP, crosses) and missed GT points (FN, squares).</p>"
        )
        for name, jpeg in overlays:
            parts.append(
                f'<div class="overlay" id="overlay-{escape(name)}">'
                f"{embedded_image(jpeg, 'image/jpeg', f'overlay of {name}')}</div>"
            )
    title = f"OCELOT detection report: mF1 {document['aggregates']['mF1']:.5g}"
    return html_document(title, _STYLE, "\n".join(parts), _TABLE_SORTER + FIGURE_CHECK_SCRIPT)
