"""Cell-in-tissue statistics of a dataset in the release layout."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from evaluation.constants import BC, TC, TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN
from evaluation.pairs import cell_box_in_tissue, tissue_label_at_cells
from evaluation.release import ReleaseDataset

__all__ = ["CellTissueStatistics", "REGIONS", "dataset_statistics", "format_statistics"]

REGIONS = ("inside CA", "outside CA", "unknown")


@dataclass
class CellTissueStatistics:
    """Counts over the pairs of one or more splits.

    Attributes
    ----------
    cells : ndarray of int64, shape (2, 3)
        Rows BC, TC; columns: cells on cancer area, on background, on unknown tissue pixels.
    tissue_pixels : ndarray of int64, shape (3,)
        Tissue-mask pixels that are background, cancer area, unknown.
    pairs : int
    organs : Counter
        Pairs per ``organ`` metadata value.
    """

    cells: np.ndarray = field(default_factory=lambda: np.zeros((2, 3), dtype=np.int64))
    tissue_pixels: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    pairs: int = 0
    organs: Counter = field(default_factory=Counter)

    def __add__(self, other: CellTissueStatistics) -> CellTissueStatistics:
        return CellTissueStatistics(
            self.cells + other.cells,
            self.tissue_pixels + other.tissue_pixels,
            self.pairs + other.pairs,
            self.organs + other.organs,
        )

    @property
    def tc_share(self) -> float:
        """TC / all cells."""
        return _ratio(self.cells[1].sum(), self.cells.sum())

    @property
    def tc_inside_share(self) -> float:
        """TC on cancer area / TC on known tissue (cells on unknown pixels left out)."""
        return _ratio(self.cells[1, 0], self.cells[1, :2].sum())

    @property
    def bc_outside_share(self) -> float:
        """BC on background / BC on known tissue (cells on unknown pixels left out)."""
        return _ratio(self.cells[0, 1], self.cells[0, :2].sum())

    @property
    def tissue_shares(self) -> np.ndarray:
        """Shares of background, cancer area, unknown among tissue-mask pixels, (3,)."""
        return self.tissue_pixels / max(self.tissue_pixels.sum(), 1)


def _ratio(numerator, denominator) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def dataset_statistics(dataset: ReleaseDataset) -> CellTissueStatistics:
    """Count cells by class and tissue region over a split; images are not decoded.

    Each cell point is mapped into the tissue patch through the cell box of its metadata and takes
    the mask value of the tissue pixel it falls on.
    """
    stats = CellTissueStatistics()
    column = {TISSUE_CANCER: 0, TISSUE_BACKGROUND: 1, TISSUE_UNKNOWN: 2}
    for index in range(len(dataset)):
        meta = dataset.meta(index)
        stats.pairs += 1
        stats.organs[str(meta.get("organ", "unknown"))] += 1
        mask = dataset.tissue_mask(index)
        if mask is None:
            continue
        with Image.open(dataset.cell_image_path(index)) as image:
            cell_shape = (image.height, image.width)
        points = dataset.cell_points(index, cell_shape)
        box = cell_box_in_tissue(meta, *mask.shape)
        regions = tissue_label_at_cells(mask, points[:, :2], box, cell_shape)
        for row, label in enumerate((BC, TC)):
            for value, col in column.items():
                stats.cells[row, col] += int(np.sum((points[:, 2] == label) & (regions == value)))
        stats.tissue_pixels += [
            int(np.sum(mask == v)) for v in (TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN)
        ]
    return stats


def format_statistics(stats: CellTissueStatistics, title: str) -> str:
    """Plain-text table of the cell-in-tissue counts and the class and region ratios."""
    total = stats.cells.sum()
    lines = [
        f"{title}: {stats.pairs} pairs, {total} cells; organs: "
        + ", ".join(f"{organ} {n}" for organ, n in sorted(stats.organs.items())),
        f"{'':6}" + "".join(f"{name:>12}" for name in REGIONS) + f"{'total':>12}",
    ]
    for name, row in (("TC", stats.cells[1]), ("BC", stats.cells[0])):
        lines.append(f"{name:6}" + "".join(f"{n:>12d}" for n in row) + f"{row.sum():>12d}")
    shares = stats.tissue_shares
    lines += [
        f"TC {100 * stats.tc_share:.1f}% / BC {100 * (1 - stats.tc_share):.1f}% of cells",
        f"TC inside CA {100 * stats.tc_inside_share:.1f}%, "
        f"BC outside CA {100 * stats.bc_outside_share:.1f}% "
        "(of cells on known tissue)",
        f"tissue pixels: background {100 * shares[0]:.1f}%, cancer area {100 * shares[1]:.1f}%, "
        f"unknown {100 * shares[2]:.1f}%",
    ]
    return "\n".join(lines)
