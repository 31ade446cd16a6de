"""The plain-text summary of a score: per-class table, mF1, per-organ table.

Written with the standard library alone: a command that prints a score should not pay for
pandas at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.constants import CLASS_NAMES, MATCH_RADIUS_PX
from evaluation.metrics import ScoreReport

__all__ = ["format_report", "format_table"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned columns separated by two spaces, as ``DataFrame.to_string(index=False)``.

    Examples
    --------
    >>> print(format_table(["class", "TP"], [["BC", 7], ["TC", 12]]))
    class  TP
       BC   7
       TC  12
    """
    cells = [[str(value) for value in row] for row in [header, *rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in cells
    )


def format_report(report: ScoreReport, *, radius_px: float = MATCH_RADIUS_PX) -> str:
    """Per class P/R/F1/TP/FP/FN, mF1, then per organ when organs are known."""
    aggregates = report.aggregates
    classes = [
        [
            name,
            f"{aggregates[f'Pre/{name}']:.4f}",
            f"{aggregates[f'Rec/{name}']:.4f}",
            f"{aggregates[f'F1/{name}']:.4f}",
            aggregates[f"TP/{name}"],
            aggregates[f"FP/{name}"],
            aggregates[f"FN/{name}"],
        ]
        for name in CLASS_NAMES.values()
    ]
    lines = [
        f"{len(report.results)} images, matching radius {radius_px:g} px",
        format_table(["class", "precision", "recall", "F1", "TP", "FP", "FN"], classes),
        f"mF1 {round(aggregates['mF1'], 5)}",
    ]
    if report.per_organ:
        organs = [
            [
                organ,
                metrics["images"],
                f"{metrics['F1/BC']:.4f}",
                f"{metrics['F1/TC']:.4f}",
                f"{round(metrics['mF1'], 5)}",
            ]
            for organ, metrics in report.per_organ.items()
        ]
        lines += [
            "",
            "per organ",
            format_table(["organ", "images", "F1/BC", "F1/TC", "mF1"], organs),
        ]
    return "\n".join(lines)
