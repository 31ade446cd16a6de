"""Where the submissions fail: detection F1, type accuracy, F1 per tissue stratum, and the
ranking on the rare cell-tissue pairings with its bootstrap rank interval.

The rare pairings are TC outside the cancer area (in background tissue) and BC inside it
(:data:`evaluation.error_analysis.RARE_PAIRINGS`). Their score is the leaderboard's formula
applied to them: each pairing's F1 rounded to 4 decimals, then the mean (``rare_mF1``). The
ranking is bootstrapped by :func:`evaluation.leaderboard.stability.rank_stability` with the
leaderboard's replicates and seed, so each replicate draws the same images as the mF1 ranking's.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from evaluation.constants import CLASS_NAMES
from evaluation.error_analysis import RARE_PAIRINGS, STRATA, ErrorCounts, summarise
from evaluation.leaderboard.stability import RankStability, rank_stability

__all__ = [
    "add_failure_columns",
    "failures_section",
    "rare_pairing_counts",
    "rare_pairing_stability",
]

_PAIRING_TITLES = {
    ("background", "TC"): "TC outside the cancer area",
    ("cancer_area", "BC"): "BC inside the cancer area",
}


def rare_pairing_counts(errors: Sequence[ErrorCounts]) -> np.ndarray:
    """``[TP, FP, FN]`` of the rare pairings per submission and image, shape (S, N, 2, 3)."""
    strata, classes = list(STRATA), list(CLASS_NAMES.values())
    return np.stack(
        [
            np.stack(
                [
                    entry.tissue[:, strata.index(stratum), classes.index(name)]
                    for stratum, name in RARE_PAIRINGS
                ],
                axis=1,
            )
            for entry in errors
        ]
    )


def rare_pairing_stability(
    errors: Sequence[ErrorCounts], *, replicates: int, seed: int, alpha: float
) -> RankStability | None:
    """The rare-pairing ranking and its paired bootstrap; None without tissue strata."""
    if not errors or any(entry.tissue is None for entry in errors):
        return None
    return rank_stability(
        rare_pairing_counts(errors), replicates=replicates, seed=seed, alpha=alpha
    )


def add_failure_columns(
    document: dict, names: Sequence[str], errors: Sequence[ErrorCounts], rare: RankStability | None
) -> None:
    """Add each scored entry's ``detection_F1`` and ``accuracy`` and, with tissue,
    ``tissue_F1`` (stratum -> class -> F1), ``rare_mF1``, ``rare_rank``, ``rare_rank_median``
    and ``rare_rank_interval``; and the document's ``rare_pairings`` (with tissue).

    Parameters
    ----------
    document : dict
        :func:`evaluation.leaderboard.document.leaderboard_document`, changed in place.
    names, errors : sequences, length S
        The scored submissions' names and error counts, in ``rare``'s row order.
    rare : RankStability or None
        :func:`rare_pairing_stability`.
    """
    row_of = {name: row for row, name in enumerate(names)}
    for entry in document["entries"]:
        if entry["status"] != "scored":
            continue
        row = row_of[entry["name"]]
        summary = summarise(errors[row])
        entry["detection_F1"] = summary["detection"]["F1"]
        entry["accuracy"] = summary["classification"]["accuracy"]
        if rare is not None:
            entry["tissue_F1"] = {
                stratum: {
                    name: summary["tissue"][stratum][name]["F1"] for name in CLASS_NAMES.values()
                }
                for stratum in STRATA
            }
            entry["rare_mF1"] = float(rare.mf1[row])
            entry["rare_rank"] = int(rare.rank[row])
            entry["rare_rank_median"] = float(rare.rank_median[row])
            entry["rare_rank_interval"] = [int(bound) for bound in rare.rank_interval[row]]
    if rare is not None:
        order = sorted(range(len(names)), key=lambda row: (int(rare.rank[row]), names[row]))
        document["rare_pairings"] = {
            "pairings": [f"{name} in {stratum}" for stratum, name in RARE_PAIRINGS],
            "ranking": [names[row] for row in order],
            "kendall_tau": rare.kendall_tau,
        }


def _number(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _failure_table(document: dict) -> str:
    scored = [entry for entry in document["entries"] if entry["status"] == "scored"]
    has_tissue = "rare_pairings" in document
    header = ["rank", "submission", "mF1", "detection F1", "type accuracy"]
    if has_tissue:
        header += [
            f"F1 {name} {stratum.replace('_', ' ')}"
            for stratum in STRATA
            for name in CLASS_NAMES.values()
        ]
    rows = []
    for entry in scored:
        cells = [
            str(entry["rank"]),
            escape(entry["name"]),
            f"{entry['mF1']:.5g}",
            _number(entry["detection_F1"]),
            _number(entry["accuracy"]),
        ]
        if has_tissue:
            cells += [
                ("<b>{}</b>" if (stratum, name) in RARE_PAIRINGS else "{}").format(
                    _number(entry["tissue_F1"][stratum][name])
                )
                for stratum in STRATA
                for name in CLASS_NAMES.values()
            ]
        rows.append(
            "<tr>"
            + "".join(
                f"<td class='text'>{cell}</td>" if column == 1 else f"<td>{cell}</td>"
                for column, cell in enumerate(cells)
            )
            + "</tr>"
        )
    head = "".join(
        f"<th class='text'>{escape(title)}</th>" if column == 1 else f"<th>{escape(title)}</th>"
        for column, title in enumerate(header)
    )
    return (
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _rare_table(document: dict) -> str:
    entries = {entry["name"]: entry for entry in document["entries"] if entry["status"] == "scored"}
    header = (
        "<tr><th>rank</th><th class='text'>submission</th><th>rare-pairing mF1</th>"
        + "".join(f"<th>F1 {escape(_PAIRING_TITLES[pairing])}</th>" for pairing in RARE_PAIRINGS)
        + "<th>median rank</th><th>95% rank interval</th><th>rank by mF1</th></tr>"
    )
    rows = []
    for name in document["rare_pairings"]["ranking"]:
        entry = entries[name]
        low, high = entry["rare_rank_interval"]
        rows.append(
            f"<tr><td>{entry['rare_rank']}</td><td class='text'>{escape(name)}</td>"
            f"<td><b>{entry['rare_mF1']:.5g}</b></td>"
            + "".join(
                f"<td>{entry['tissue_F1'][stratum][cls]:.4f}</td>" for stratum, cls in RARE_PAIRINGS
            )
            + f"<td>{entry['rare_rank_median']:g}</td><td>{low} – {high}</td>"
            f"<td>{entry['rank']}</td></tr>"
        )
    return (
        f"<div class='scroll'><table><thead>{header}</thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def failures_section(document: dict, rare_figure: str | None) -> str:
    """The page's "Where they fail" and "Rare pairings" sections.

    Parameters
    ----------
    document : dict
        The leaderboard document after :func:`add_failure_columns`.
    rare_figure : str or None
        The embedded figure of the rare-pairing ranking (with tissue).
    """
    if not any(entry["status"] == "scored" for entry in document["entries"]):
        return ""
    parts = [
        "<h2>Where they fail</h2>",
        "<p class='caption'>Detection F1 matches predictions to GT points of any class with "
        "the leaderboard's greedy rule and radius; type accuracy is the share of those matches "
        "with the right class. "
        + (
            "F1 per class and tissue stratum: the leaderboard's matching, a TP and an FN "
            "counted in the GT point's tissue, an FP in the prediction's; bold: the rare "
            "pairings."
            if "rare_pairings" in document
            else "Give tissue annotations (<code>--tissue DIR</code>, or a release folder as "
            "ground truth) for the F1 per tissue stratum and the rare-pairing ranking."
        )
        + " Rows by mF1 rank.</p>",
        _failure_table(document),
    ]
    if "rare_pairings" in document:
        tau = document["rare_pairings"]["kendall_tau"]
        parts += [
            "<h2>Ranking on the rare pairings</h2>",
            "<p class='caption'>Where tissue context should help most: cells unusual for their "
            "tissue, TC outside the cancer area and BC inside it. Ranked by the mean of their "
            "two F1s (each rounded to 4 decimals, as mF1), ties sharing the best rank; the "
            "rank interval comes from the leaderboard's own paired bootstrap replicates. Mean "
            "Kendall's τ between the replicate rankings and this one: "
            f"{'n/a' if tau is None else f'{tau:.3f}'}.</p>",
            _rare_table(document),
            rare_figure or "",
        ]
    return "".join(parts)
