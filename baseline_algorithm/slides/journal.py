"""The finished tiles of a run, kept beside the output so that an interrupted run continues.

The journal is a folder ``OUTPUT.tiles/`` with ``run.json`` (what the run is: slide, detector,
options) and ``tiles.jsonl``, one line per finished tile with the level-0 points its core kept.
A line is appended and flushed to disk once the tile is done, so a run stopped at any moment
loses at most the tiles in flight; a last line cut short by the stop is ignored. A journal of a
different run (other slide, detector or options) is discarded. The folder is removed once the
outputs are written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from evaluation.files import write_json_atomic

__all__ = ["TileJournal", "journal_folder"]


def journal_folder(output: Path) -> Path:
    """Where the journal of the run writing ``output`` lives."""
    return output.with_name(output.name + ".tiles")


class TileJournal:
    """Points of finished tiles, by (column, row).

    Parameters
    ----------
    folder : Path
    run : dict
        JSON-serialisable description of the run; a journal of another run is discarded.
    """

    def __init__(self, folder: Path, run: dict):
        self.folder = folder
        self.done: dict[tuple[int, int], np.ndarray] = {}
        record = folder / "run.json"
        lines = folder / "tiles.jsonl"
        if record.is_file() and _read_json(record) == run and lines.is_file():
            self.done = _read_lines(lines)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            write_json_atomic(record, run)
            lines.touch()
        self._file = open(lines, "a", encoding="utf-8")  # noqa: SIM115  (closed by close())

    def record(self, column: int, row: int, points: np.ndarray) -> None:
        """Add a finished tile and its points, shape (N, 4): x, y (level-0 pixels), class, prob."""
        entry = {"tile": [column, row], "points": np.asarray(points, float).tolist()}
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done[(column, row)] = np.asarray(points, float).reshape(-1, 4)

    def points(self) -> np.ndarray:
        """Every recorded point, shape (N, 4)."""
        parts = list(self.done.values())
        return np.concatenate(parts) if parts else np.zeros((0, 4))

    def close(self) -> None:
        self._file.close()

    def remove(self) -> None:
        """Delete the journal (the outputs are written)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_lines(path: Path) -> dict[tuple[int, int], np.ndarray]:
    done = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
                column, row = entry["tile"]
                points = np.asarray(entry["points"], float).reshape(-1, 4)
            except (ValueError, KeyError, TypeError):
                break  # the line a stop cut short: the tiles from here on are redone
            done[(int(column), int(row))] = points
    return done
