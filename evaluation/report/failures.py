"""The report's "Where it fails" section: detection against classification, tissue strata."""

from __future__ import annotations

from html import escape

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from evaluation.constants import CLASS_NAMES
from evaluation.error_analysis import RARE_PAIRINGS, STRATA
from evaluation.report.figures import CLASS_COLOURS, _encode

__all__ = ["STRATUM_TITLES", "failures_section", "stratum_f1_png"]

#: How the page names each stratum.
STRATUM_TITLES = {
    "cancer_area": "cancer area",
    "background": "background (outside cancer)",
    "unknown": "unknown tissue",
}


def stratum_f1_png(analysis: dict, dpi: int = 100) -> bytes:
    """F1 of each class in each tissue stratum, with bootstrap intervals.

    Parameters
    ----------
    analysis : dict
        The report's ``analysis`` (with ``tissue`` and ``intervals``).

    Returns
    -------
    bytes
        PNG: one group of bars per stratum, one bar per class (hatched: a rare pairing), whiskers
        the 95% interval over images; each bar is labelled with its F1 and its GT count.
    """
    intervals = analysis["intervals"]["tissue"]
    names = list(CLASS_NAMES.values())
    figure = Figure(figsize=(10.4, 3.6), layout="constrained")
    ax = figure.subplots()
    height = 0.38
    for c, name in enumerate(names):
        positions = np.arange(len(STRATA)) + (c - 0.5) * height
        estimate = np.array([intervals[s][name]["F1"]["estimate"] for s in STRATA])
        low = np.array([intervals[s][name]["F1"]["low"] for s in STRATA])
        high = np.array([intervals[s][name]["F1"]["high"] for s in STRATA])
        bars = ax.barh(
            positions,
            estimate,
            height=height * 0.92,
            color=CLASS_COLOURS[name],
            xerr=np.clip(np.stack([estimate - low, high - estimate]), 0, None),
            error_kw={"elinewidth": 1.2, "capsize": 3, "ecolor": "black"},
        )
        for bar, stratum, value, top in zip(bars, STRATA, estimate, high):
            counts = analysis["tissue"][stratum][name]
            rare = (stratum, name) in RARE_PAIRINGS
            if rare:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
            ax.annotate(
                f"{value:.3f}  ({counts['TP'] + counts['FN']} GT)",
                (max(top, value), bar.get_y() + bar.get_height() / 2),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    ax.set_yticks(
        np.arange(len(STRATA)),
        [f"{STRATUM_TITLES[s]}\nmF1 {analysis['tissue'][s]['mF1']:.4f}" for s in STRATA],
    )
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 1.25),
        xlabel="F1 (bars) with 95% bootstrap interval over images (whiskers)",
        title="F1 per class and tissue stratum (leaderboard matching)",
    )
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[Patch(color=CLASS_COLOURS[name], label=f"F1 {name}") for name in names]
        + [Patch(facecolor="0.55", edgecolor="white", hatch="//", label="rare pairing")],
        loc="lower right",
        fontsize=9,
    )
    return _encode(figure, "png", dpi=dpi)


def _interval(entry: dict) -> str:
    if entry.get("low") is None:
        return "n/a"
    return f"{entry['low']:.4f} – {entry['high']:.4f}"


def _share(part: int, whole: int) -> str:
    return "–" if whole == 0 else f"{part / whole:.1%}"


def _detection_table(analysis: dict, aggregates: dict) -> str:
    detection = analysis["detection"]
    classification = analysis["classification"]
    intervals = analysis["intervals"]
    wrong = classification["wrong_class"]
    false_positives = sum(aggregates[f"FP/{name}"] for name in CLASS_NAMES.values())
    false_negatives = sum(aggregates[f"FN/{name}"] for name in CLASS_NAMES.values())
    rows = [
        (
            "detection F1 (any class)",
            f"<b>{detection['F1']:.4f}</b>",
            _interval(intervals["detection"]["F1"]),
            f"P {detection['precision']:.4f} · R {detection['recall']:.4f} · TP {detection['TP']} "
            f"· FP {detection['FP']} · FN {detection['FN']}",
        ),
        (
            "type accuracy of the detected cells",
            f"<b>{classification['accuracy']:.4f}</b>",
            _interval(intervals["classification"]["accuracy"]),
            f"{detection['TP'] - wrong} of {detection['TP']} detected cells named right",
        ),
        (
            "wrong-class detections, share of the leaderboard's FPs",
            _share(wrong, false_positives),
            "",
            f"{wrong} of {false_positives} FPs",
        ),
        (
            "wrong-class detections, share of the leaderboard's FNs",
            _share(wrong, false_negatives),
            "",
            f"{wrong} of {false_negatives} FNs",
        ),
    ]
    body = "".join(
        f"<tr><td>{label}</td><td>{value}</td><td>{interval}</td>"
        f"<td class='text'>{detail}</td></tr>"
        for label, value, interval, detail in rows
    )
    return (
        "<table><thead><tr><th></th><th>value</th><th>95% interval</th><th></th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


def _confusion_table(analysis: dict) -> str:
    confusion = analysis["classification"]["confusion"]
    names = list(CLASS_NAMES.values())
    header = "".join(f"<th>predicted {name}</th>" for name in names)
    body = "".join(
        f"<tr><td>GT {gt}</td>"
        + "".join(
            f"<td>{'<b>' if gt == predicted else ''}{confusion[gt][predicted]}"
            f"{'</b>' if gt == predicted else ''}</td>"
            for predicted in names
        )
        + "</tr>"
        for gt in names
    )
    return f"<table><thead><tr><th></th>{header}</tr></thead><tbody>{body}</tbody></table>"


def _strata_table(analysis: dict) -> str:
    intervals = analysis["intervals"]["tissue"]
    rows = []
    for stratum in STRATA:
        entry = analysis["tissue"][stratum]
        for name in CLASS_NAMES.values():
            counts = entry[name]
            rare = (
                ""
                if (stratum, name) not in RARE_PAIRINGS
                else " <span class='caption'>(rare)</span>"
            )
            rows.append(
                f"<tr><td>{escape(STRATUM_TITLES[stratum])}</td><td>{name}{rare}</td>"
                f"<td>{counts['TP']}</td><td>{counts['FP']}</td><td>{counts['FN']}</td>"
                f"<td>{counts['precision']:.4f}</td><td>{counts['recall']:.4f}</td>"
                f"<td><b>{counts['F1']:.4f}</b></td>"
                f"<td>{_interval(intervals[stratum][name]['F1'])}</td></tr>"
            )
        rows.append(
            f"<tr><td>{escape(STRATUM_TITLES[stratum])}</td><td>mF1</td>"
            "<td></td><td></td><td></td><td></td><td></td>"
            f"<td><b>{entry['mF1']:.5g}</b></td>"
            f"<td>{_interval(intervals[stratum]['mF1'])}</td></tr>"
        )
    header = (
        "<tr><th>tissue</th><th>class</th><th>TP</th><th>FP</th><th>FN</th>"
        "<th>precision</th><th>recall</th><th>F1</th><th>95% interval</th></tr>"
    )
    return f"<table><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>"


def _organ_table(analysis: dict) -> str:
    per_organ = analysis["per_organ"]
    has_tissue = "tissue" in analysis
    header = ["organ", "images", "detection F1", "type accuracy"]
    if has_tissue:
        header += [f"F1 {name} {STRATUM_TITLES[stratum]}" for stratum, name in RARE_PAIRINGS]
    rows = []
    for organ, entry in per_organ.items():
        cells = [
            escape(organ),
            str(entry["images"]),
            f"{entry['detection']['F1']:.4f}",
            f"{entry['classification']['accuracy']:.4f}",
        ]
        if has_tissue:
            cells += [
                f"{entry['tissue'][stratum][name]['F1']:.4f}" for stratum, name in RARE_PAIRINGS
            ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{escape(title)}</th>" for title in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def failures_section(document: dict, figure_html: str | None) -> str:
    """The HTML of "Where it fails".

    Parameters
    ----------
    document : dict
        The report document, with ``analysis`` and ``aggregates``.
    figure_html : str or None
        The embedded stratum figure (with tissue annotations), or None.
    """
    analysis = document["analysis"]
    parts = [
        "<h2>Where it fails</h2>",
        "<p class='caption'>Under the leaderboard's rule a cell found at the right place with "
        "the wrong class is one FP and one FN, like a miss plus a spurious detection. Here the "
        "two are told apart: <b>detection</b> matches predictions to GT points of any class "
        "(the same greedy rule and radius, all predictions of an image visited together by "
        "confidence); <b>classification</b> counts the classes of those matches. A wrong-class "
        "detection is usually one of the leaderboard's FPs and one of its FNs.</p>",
        _detection_table(analysis, document["aggregates"]),
        "<h3>Confusion of the detected cells</h3>",
        _confusion_table(analysis),
    ]
    if "tissue" in analysis:
        parts += [
            "<h3>By tissue</h3>",
            "<p class='caption'>The leaderboard's own matching, split by the tissue annotation "
            "under each cell: a TP and an FN count in the GT point's tissue, an FP in the "
            "prediction's. Summed over the strata the counts are the leaderboard's. The rare "
            "pairings are TC outside the cancer area and BC inside it.</p>",
            figure_html or "",
            _strata_table(analysis),
        ]
    else:
        parts.append(
            "<p>No tissue annotations: give a release folder as ground truth with "
            "<code>--split</code>, or <code>--tissue DIR</code>, to see the strata.</p>"
        )
    if "per_organ" in analysis:
        parts += ["<h3>Per organ</h3>", _organ_table(analysis)]
    return "\n".join(parts)
