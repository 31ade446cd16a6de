#!/usr/bin/env python
"""Convergence of an experiment: validation mF1 against epoch, one line per run.

Reads ``EXPERIMENT/table.json`` (written by ``reproduce``) for its runs and each run's
``EXPERIMENT/<row>/seed-<K>/history.json``; draws one line per run, coloured by row, with a
marker at the run's best epoch (the checkpoint the table scores) and a cross on the runs that
did not converge (their best epoch is their last). One figure per table:

    python scripts/plot_convergence.py runs/tables/table5 docs/tables/table5_convergence.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def run_curves(experiment: Path) -> dict[str, list[dict]]:
    """Run name (``<row>/seed-<K>``) -> its history records, in the table's order."""
    document = json.loads((experiment / "table.json").read_text())
    return {
        name: json.loads((experiment / name / "history.json").read_text())
        for name in document["runs"]
    }


def plot(experiment: Path, out: Path, title: str | None = None) -> Path:
    """Draw ``experiment``'s curves into ``out`` (PNG, 150 dpi); returns ``out``."""
    document = json.loads((experiment / "table.json").read_text())
    curves = run_curves(experiment)
    rows = list(dict.fromkeys(name.rsplit("/", 1)[0] for name in curves))
    colours = plt.get_cmap("tab10")
    figure, axes = plt.subplots(figsize=(8, 5))
    for name, history in curves.items():
        row = name.rsplit("/", 1)[0]
        colour = colours(rows.index(row) % 10)
        epochs = [record["epoch"] for record in history]
        scores = [100 * record["mF1"] for record in history]
        first = name == next(n for n in curves if n.rsplit("/", 1)[0] == row)
        axes.plot(epochs, scores, color=colour, alpha=0.8, label=row if first else None)
        run = document["runs"][name]
        best = run["best_epoch"]
        axes.plot(best, scores[epochs.index(best)], "o", color=colour)
        if run.get("converged") is False:
            axes.plot(epochs[-1], scores[-1], "x", color="black")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation mF1 x 100")
    axes.set_title(title or f"{experiment.name}: validation mF1 per epoch, one line per run")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, title="row (dot: best epoch; x: not converged)", title_fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=150)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="reproduce's --out (holds table.json)")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    print(plot(args.experiment, args.out, args.title))


if __name__ == "__main__":
    main()
