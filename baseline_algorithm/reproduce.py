"""The paper's Tables 5 and 7 on a release-layout dataset (synthesized unless one is given).

Steps: synthesize a dataset (unless one is given); train every requested variant, under every
requested data ablation (Table 7) and with every seed, with one configuration; score each best
checkpoint on the test split with :func:`evaluation.score`; write a markdown table with, per row,
the mean ± standard deviation of the test mF1 over seeds, a 95% bootstrap interval over test
images of that mean, and its paired gain over Cell-only (the same resampled images for every
run, :func:`evaluation.bootstrap.paired_replicates`); and, from :mod:`evaluation.error_analysis`,
the detection F1, the type accuracy and the F1 of the rare cell-tissue pairings (TC outside the
cancer area, BC inside it).

A run whose directory already holds a finished run with the same options is not retrained, and an
interrupted one resumes from its ``last.pt``, so the command can be rerun after a stop.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path

import numpy as np
import torch

from baseline_algorithm.checkpoint import load_checkpoint, read_checkpoint
from baseline_algorithm.data import synthesize_dataset
from baseline_algorithm.inference import DetectionSettings
from baseline_algorithm.model import VARIANTS, CellTissueModel, has_tissue_branch
from baseline_algorithm.runtime import memory_format, resolve_runtime
from baseline_algorithm.train import (
    ABLATIONS,
    RESUME_OVERRIDES,
    TrainingError,
    TrainingOptions,
    cpu_seconds,
    data_resolution,
    fit,
    score_pairs,
    scoring_radius_px,
)
from evaluation import write_json_atomic
from evaluation.bootstrap import STATISTICS, paired_replicates, percentile_interval
from evaluation.error_analysis import RARE_PAIRINGS, ErrorCounts, error_counts, summarise
from evaluation.errors import preview
from evaluation.pairs import Pair
from evaluation.release import ReleaseDataset
from evaluation.tissue import TissueMaps, read_release_tissue, release_has_tissue

__all__ = [
    "BASELINE",
    "FAILURE_COLUMNS",
    "NOT_AFFECTING_RESULTS",
    "PAPER_TEST_MF1",
    "SYNTHETIC_PAIRS",
    "evaluate",
    "evaluate_pairs",
    "experiment_rows",
    "failure_numbers",
    "markdown_table",
    "release_tissue",
    "reproduce",
    "row_name",
    "table_rows",
]

BASELINE = ("cell-only", "both")
"""The row every gain is measured against."""
PAPER_TEST_MF1 = {
    # Table 5 (mean of 5 runs, OCELOT test, mF1 x 100)
    ("cell-only", "both"): 64.44,
    ("pred-to-input", "both"): 69.65,
    ("pred-to-inter-1", "both"): 70.54,
    ("pred-to-inter-2", "both"): 71.23,
    ("pred-to-output", "both"): 65.05,
    ("feature-sharing", "both"): 68.91,
    ("tissue-label-leaking", "both"): 74.20,
    # Table 7 (dataset ablation)
    ("pred-to-inter-2", "tissue-label-only"): 64.99,
    ("pred-to-inter-2", "large-fov-only"): 65.56,
    ("feature-sharing", "tissue-label-only"): 66.58,
    ("feature-sharing", "large-fov-only"): 66.22,
}
"""The paper's test mF1 x 100 of each (variant, ablation) row."""
SYNTHETIC_PAIRS = (96, 24, 48)
"""Train, val and test pairs of the synthesized dataset by default."""
FAILURE_COLUMNS = (
    "detection_F1",
    "accuracy",
    *(f"F1/{name}/{stratum}" for stratum, name in RARE_PAIRINGS),
)
"""Numbers of :mod:`evaluation.error_analysis` per row: detection F1, type accuracy, and the F1
of TC outside the cancer area and of BC inside it (these two need tissue annotations)."""


def evaluate(
    checkpoint: Path,
    data: Path,
    split: str,
    settings: DetectionSettings,
    device: torch.device,
    batch_size: int,
    progress: bool = True,
    precision: str = "float32",
) -> dict:
    """Score a checkpoint on a split of a release-layout dataset (see :func:`evaluate_pairs`)."""
    model = load_checkpoint(checkpoint, map_location=device)
    model.to(memory_format=memory_format(precision))
    pairs = ReleaseDataset(data, split)
    return evaluate_pairs(
        model,
        pairs,
        settings,
        batch_size,
        progress,
        precision,
        tissue=release_tissue(data, split, pairs.names),
    )


def release_tissue(data: Path, split: str, names: Sequence[str]) -> TissueMaps | None:
    """The tissue maps of a release split's pairs, None when it has no tissue annotations."""
    return read_release_tissue(data, split, names) if release_has_tissue(data, split) else None


def evaluate_pairs(
    model: CellTissueModel,
    pairs: Sequence[Pair],
    settings: DetectionSettings,
    batch_size: int,
    progress: bool = True,
    precision: str = "float32",
    tissue: TissueMaps | None = None,
) -> dict:
    """Score a model on pairs: aggregates, per-image counts (arrays), the error analysis's
    per-image counts (``errors``, strata with ``tissue`` only) and throughput.

    The scoring radius is 3 um at the nominal resolution of the pairs' cell patch side (15 px at
    1024 px, scaled with the side). The throughput counts detection and scoring. ``precision``
    is a resolved one (:mod:`baseline_algorithm.runtime`).
    """
    start = time.perf_counter()
    radius_px = scoring_radius_px(data_resolution(pairs[0])[0])
    report, predictions, truth, count = score_pairs(
        model, pairs, radius_px, settings, batch_size, progress, precision
    )
    errors = error_counts(
        predictions, truth, count, matched=report.matched, radius_px=radius_px, tissue=tissue
    )
    seconds = time.perf_counter() - start
    return {
        "aggregates": report.aggregates,
        "counts": report.counts,
        "errors": errors,
        "pairs_per_second": len(pairs) / seconds,
    }


def run_epochs(run: Path) -> dict:
    """How a finished run in ``run`` trained: its ``best`` and ``last`` epochs (1-based), why it
    ``stopped`` (:data:`~baseline_algorithm.train.STOP_REASONS`, None for a run recorded before
    it was), whether it ``converged``, and its training ``cpu_seconds`` (None when an epoch
    predates the record).

    A run has converged when its best val epoch comes before its last epoch (later epochs did
    not improve on it) or early stopping ended it; a run whose best epoch is its last was still
    improving when it stopped.
    """
    history = json.loads((run / "history.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    best, last = summary["best"]["epoch"], len(history)
    stopped = summary.get("stopped")
    cpu = [record.get("cpu_seconds") for record in history]
    return {
        "best": best,
        "last": last,
        "stopped": stopped,
        "converged": best < last or stopped == "patience",
        "cpu_seconds": None if None in cpu else float(sum(cpu)),
    }


def failure_numbers(errors: ErrorCounts) -> dict:
    """``FAILURE_COLUMNS`` of one run (the rare-pairing F1s None without tissue)."""
    summary = summarise(errors)
    numbers = {
        "detection_F1": summary["detection"]["F1"],
        "accuracy": summary["classification"]["accuracy"],
    }
    for stratum, name in RARE_PAIRINGS:
        numbers[f"F1/{name}/{stratum}"] = (
            summary["tissue"][stratum][name]["F1"] if "tissue" in summary else None
        )
    return numbers


def row_name(variant: str, ablation: str) -> str:
    """Directory and label of a (variant, ablation) row: ``pred-to-inter-2`` or
    ``pred-to-inter-2+large-fov-only``."""
    return variant if ablation == "both" else f"{variant}+{ablation}"


def table_rows(
    results: dict[tuple[str, str], dict[int, dict]],
    resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> list[dict]:
    """One row per (variant, ablation): numbers x 100 over seeds, intervals over test images.

    Parameters
    ----------
    results : dict
        (variant, ablation) -> seed -> :func:`evaluate_pairs` result; every run scored on the
        same test images.
    resamples : int
        Bootstrap resamples of the test images, shared by every run (paired).
    seed : int
        Seed of the resampling.
    confidence : float
        Coverage of the intervals.

    Returns
    -------
    list of dict
        ``variant``, ``ablation``, ``seeds``, per-seed ``mF1_runs``; ``mF1``, ``F1/BC``,
        ``F1/TC`` (means over seeds of the leaderboard's numbers) with ``*_std`` (sample
        standard deviation, None for one seed); ``mF1_ci`` (bootstrap interval of the seed mean);
        ``gain`` and ``gain_ci`` over Cell-only when it is among the rows; each of
        ``FAILURE_COLUMNS`` (with ``*_std``) where every run of the row has it (results with
        ``errors``); where every run has ``epochs`` (:func:`run_epochs`), ``best_epoch``,
        ``last_epoch`` and ``converged``, per seed.
    """
    counts = {
        (key, run_seed): result["counts"]
        for key, runs in results.items()
        for run_seed, result in runs.items()
    }
    replicates = paired_replicates(counts, replicates=resamples, seed=seed)
    mf1 = STATISTICS.index("mF1")
    # Per row: the seed mean of mF1 on each resample, (resamples,).
    boot = {
        key: np.mean([replicates[(key, run_seed)][:, mf1] for run_seed in runs], axis=0)
        for key, runs in results.items()
    }
    rows = []
    for key, runs in results.items():
        seeds = sorted(runs)
        row = {"variant": key[0], "ablation": key[1], "seeds": seeds}
        for name in ("mF1", "F1/BC", "F1/TC"):
            values = 100 * np.array([runs[s]["aggregates"][name] for s in seeds])
            row[name] = float(values.mean())
            row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
            if name == "mF1":
                row["mF1_runs"] = values.tolist()
        failures = [failure_numbers(runs[s]["errors"]) for s in seeds if "errors" in runs[s]]
        for name in FAILURE_COLUMNS:
            values = [numbers[name] for numbers in failures if numbers[name] is not None]
            if values and len(values) == len(seeds):
                values = 100 * np.array(values)
                row[name] = float(values.mean())
                row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        if all("epochs" in runs[s] for s in seeds):
            for name in ("best", "last", "converged"):
                row[f"{name}_epoch" if name != "converged" else name] = [
                    runs[s]["epochs"][name] for s in seeds
                ]
        row["mF1_ci"] = tuple(100 * float(v) for v in percentile_interval(boot[key], confidence))
        if BASELINE in results and key != BASELINE:
            baseline = np.mean([run["aggregates"]["mF1"] for run in results[BASELINE].values()])
            row["gain"] = row["mF1"] - 100 * float(baseline)
            difference = boot[key] - boot[BASELINE]
            row["gain_ci"] = tuple(
                100 * float(v) for v in percentile_interval(difference, confidence)
            )
        rows.append(row)
    return rows


def _mean_std(row: dict, name: str) -> str:
    if name not in row:
        return "-"
    std = row[f"{name}_std"]
    return f"{row[name]:.2f}" if std is None else f"{row[name]:.2f} ± {std:.2f}"


def _not_converged_mark(row: dict) -> str:
    if "converged" not in row or all(row["converged"]):
        return ""
    return f" (**not converged**: {row['converged'].count(False)} of {len(row['seeds'])} seeds)"


def _epochs(row: dict) -> str:
    if "best_epoch" not in row:
        return "-"
    return ", ".join(
        f"{b}/{last}" for b, last in zip(row["best_epoch"], row["last_epoch"], strict=True)
    )


def markdown_table(rows: list[dict], n_images: int, resamples: int) -> str:
    """The rows as a markdown table, with a line saying how the numbers were computed."""
    lines = [
        f"| Variant | data | seeds | test mF1 (mean ± std) | 95% CI ({n_images} test images) "
        "| F1/BC | F1/TC | gain over Cell-only (95% CI) | paper, OCELOT test mF1 "
        "| detection F1 | type accuracy | F1 TC outside CA | F1 BC inside CA "
        "| best / last epoch per seed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        gain = (
            f"{row['gain']:+.2f} ({row['gain_ci'][0]:+.2f}, {row['gain_ci'][1]:+.2f})"
            if "gain" in row
            else "-"
        )
        paper = PAPER_TEST_MF1.get((row["variant"], row["ablation"]))
        lines.append(
            f"| {row['variant']}{_not_converged_mark(row)} | {row['ablation']} "
            f"| {len(row['seeds'])} "
            f"| {_mean_std(row, 'mF1')} | {row['mF1_ci'][0]:.2f} - {row['mF1_ci'][1]:.2f} "
            f"| {_mean_std(row, 'F1/BC')} | {_mean_std(row, 'F1/TC')} | {gain} "
            f"| {'-' if paper is None else f'{paper:.2f}'} | "
            + " | ".join(_mean_std(row, name) for name in FAILURE_COLUMNS)
            + f" | {_epochs(row)} |"
        )
    lines += [
        "",
        "mF1 and F1 x 100 on the test split, scored by `evaluation.score` (3 µm radius), mean "
        "and sample standard deviation over seeds. Intervals: percentile bootstrap over test "
        f"images of the seed mean, {resamples} resamples shared by every run (paired gains), "
        "unrounded F1 (`evaluation.bootstrap`). Detection F1 (classes ignored in matching), "
        "type accuracy of the detected cells, and the F1 of TC outside the cancer area (CA) "
        "and of BC inside it (leaderboard matching, by the tissue under each cell): "
        "`evaluation.error_analysis`, x 100, mean ± std over seeds. Epochs: each seed's best "
        "val epoch / last epoch trained; **not converged** marks a row with a seed whose best "
        "epoch is its last (it was still improving) and that early stopping did not end.",
    ]
    return "\n".join(lines)


def cpu_hours(document: dict) -> str:
    """The experiment's CPU time as a line: training (all runs' epochs) and scoring, hours."""
    cpu = document["cpu_seconds"]
    training = "unknown" if cpu["training"] is None else f"{cpu['training'] / 3600:.2f} h"
    return f"training {training}, scoring {cpu['scoring'] / 3600:.2f} h (this call)"


#: Options that do not change what a run computes: a finished run is reused whatever they are.
NOT_AFFECTING_RESULTS = ("out", "workers", "device", "max_minutes")


def _comparable(options: dict, ignored: tuple[str, ...]) -> dict:
    """``options`` as JSON stores them, without the ``ignored`` keys.

    An option missing from a run recorded before it existed takes its default. For
    ``precision`` that is what such a run did (bfloat16 or float16 on CUDA, float32 on a CPU)
    everywhere except on a CPU with native bfloat16, where ``auto`` now trains in bfloat16 and
    an older float32 run there counts as the same run.
    """
    defaults = {
        item.name: item.default for item in fields(TrainingOptions) if item.default is not MISSING
    }
    values = json.loads(json.dumps({**defaults, **options}))
    return {key: value for key, value in values.items() if key not in ignored}


def _finished(run: Path, options: TrainingOptions) -> bool:
    summary = run / "summary.json"
    if not (summary.exists() and (run / "best.pt").exists()):
        return False
    stored = json.loads(summary.read_text())
    return _comparable(stored.get("options", {}), NOT_AFFECTING_RESULTS) == _comparable(
        asdict(options), NOT_AFFECTING_RESULTS
    ) and (stored.get("epochs") == options.epochs or stored.get("stopped") == "patience")


def _resumable(run: Path, options: TrainingOptions) -> bool:
    if not (run / "last.pt").exists():
        return False
    stored = read_checkpoint(run / "last.pt")["options"]
    return _comparable(stored, RESUME_OVERRIDES) == _comparable(asdict(options), RESUME_OVERRIDES)


def experiment_rows(variants: Sequence[str], ablations: Sequence[str]) -> list[tuple[str, str]]:
    """(variant, ablation) rows: every ablation for variants with a tissue branch, ``both``
    for the others (they have no tissue branch to ablate)."""
    unknown = [name for name in variants if name not in VARIANTS]
    unknown += [name for name in ablations if name not in ABLATIONS]
    if unknown:
        raise ValueError(f"unknown variants or ablations: {unknown}")
    rows = []
    for variant in variants:
        for ablation in ablations if has_tissue_branch(variant) else ("both",):
            if (variant, ablation) not in rows:
                rows.append((variant, ablation))
    return rows


def reproduce(
    out: Path,
    template: TrainingOptions,
    *,
    data: Path | None = None,
    pairs: tuple[int, int, int] = SYNTHETIC_PAIRS,
    size: int = 256,
    data_seed: int = 0,
    variants: Sequence[str] = tuple(VARIANTS),
    ablations: Sequence[str] = ("both",),
    seeds: Sequence[int] = (0,),
    row_seeds: Mapping[str, Sequence[int]] | None = None,
    resamples: int = 2000,
    progress: bool = True,
) -> dict:
    """Run the whole experiment; returns the result document (also ``OUT/table.json``, ``.md``).

    Each run trains in ``OUT/<row>/seed-<K>`` (see :func:`row_name`) with ``template``'s options
    and the row's variant, ablation and seed. ``row_seeds`` maps a row's name to its own seeds,
    instead of ``seeds``. The document records each run's best and last epoch and whether it
    converged (:func:`run_epochs`), and the CPU time of the experiment: every epoch of every run
    (however many calls trained it) plus this call's scoring.
    """
    rows_trained = experiment_rows(variants, ablations)
    row_seeds = dict(row_seeds or {})
    unknown = sorted(set(row_seeds) - {row_name(*key) for key in rows_trained})
    if unknown:
        raise TrainingError(
            f"--row-seeds {preview(', '.join(unknown))}: not rows of this experiment (rows: "
            f"{', '.join(row_name(*key) for key in rows_trained)})"
        )
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = out / "data"
        if not (data / "metadata.json").exists():
            print(
                f"synthesizing {pairs} pairs (train, val, test) at {size} px into {data}",
                flush=True,
            )
            synthesize_dataset(
                data,
                pairs,
                size=size,
                seed=data_seed,
                progress=progress,
                workers=max(1, template.workers),
            )
    runtime = resolve_runtime(template.device or "auto", template.precision)
    print(f"reproduce: {runtime}", flush=True)
    device = torch.device(runtime.device)
    test_pairs = ReleaseDataset(data, "test")
    test_tissue = release_tissue(data, "test", test_pairs.names)
    results: dict[tuple[str, str], dict[int, dict]] = {}
    runs = {}
    scoring_cpu = 0.0
    for variant, ablation in rows_trained:
        for seed in row_seeds.get(row_name(variant, ablation), seeds):
            name = f"{row_name(variant, ablation)}/seed-{seed}"
            run = out / row_name(variant, ablation) / f"seed-{seed}"
            options = replace(
                template,
                data=str(data),
                out=str(run),
                variant=variant,
                ablation=ablation,
                seed=seed,
            )
            start = time.perf_counter()
            if _finished(run, options):
                print(f"{name}: finished run found in {run}, not retrained", flush=True)
            else:
                resume = _resumable(run, options)
                print(f"{name}: {'resuming' if resume else 'training'} in {run}", flush=True)
                fit(options, resume=resume, progress=progress)
            train_seconds = time.perf_counter() - start
            history = json.loads((run / "history.json").read_text())
            scoring_started = cpu_seconds()
            model = load_checkpoint(run / "best.pt", map_location=device)
            model.to(memory_format=memory_format(runtime.precision))
            result = evaluate_pairs(
                model,
                test_pairs,
                options.detection(),
                options.batch_size,
                progress,
                runtime.precision,
                tissue=test_tissue,
            )
            scoring_cpu += cpu_seconds() - scoring_started
            best = read_checkpoint(run / "best.pt")
            result["epochs"] = run_epochs(run)
            runs[name] = {
                "epochs_trained": len(history),
                "best_epoch": best["epoch"],
                "last_epoch": result["epochs"]["last"],
                "stopped": result["epochs"]["stopped"],
                "converged": result["epochs"]["converged"],
                "cpu_seconds": result["epochs"]["cpu_seconds"],
                "val_mF1": best["val"]["mF1"],
                "test_mF1": result["aggregates"]["mF1"],
                "train_pairs_per_second": float(
                    np.mean([record["train_pairs_per_second"] for record in history])
                ),
                "wall_seconds_this_call": train_seconds,
                "test_pairs_per_second": result["pairs_per_second"],
            }
            print(
                f"{name}: test mF1 {result['aggregates']['mF1']:.4f} (best epoch {best['epoch']}, "
                f"val mF1 {best['val']['mF1']:.4f}); train "
                f"{runs[name]['train_pairs_per_second']:.2f} pairs/s, test inference "
                f"{result['pairs_per_second']:.2f} pairs/s on {device}",
                flush=True,
            )
            results.setdefault((variant, ablation), {})[seed] = result
    rows = table_rows(results, resamples, seed=data_seed)
    table = markdown_table(rows, len(test_pairs), resamples)
    training_cpu = [run["cpu_seconds"] for run in runs.values()]
    document = {
        # sys.argv[0] is this package's __main__.py; name the command the way it is typed.
        "command": shlex.join(["python", "-m", "baseline_algorithm", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} "
        f"torch threads, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "data": str(data),
        "test_images": len(test_pairs),
        "resamples": resamples,
        "options": asdict(template),
        "seeds": list(seeds),
        "row_seeds": {name: list(values) for name, values in row_seeds.items()},
        "cpu_seconds": {
            # None when a run was trained before its epochs recorded their CPU time.
            "training": None if None in training_cpu else float(sum(training_cpu)),
            "scoring": scoring_cpu,
        },
        "rows": rows,
        "runs": runs,
    }
    write_json_atomic(out / "table.json", document)
    (out / "table.md").write_text(
        f"{table}\n\nCommand: `{document['command']}`\nMachine: {document['machine']}\n"
        f"CPU time: {cpu_hours(document)}\n"
    )
    print(table, flush=True)
    return document
