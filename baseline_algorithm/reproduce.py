"""``reproduce``: the paper's central effect (tissue context helps cell detection) on synthetic data.

Steps: synthesize a dataset (unless one is given), train Cell-only, Pred-to-inter-2 and
Tissue-label-leaking with one configuration, score each best checkpoint on the test split with
:func:`evaluation.score`, and write a markdown table: mF1, F1 per class, a 95% bootstrap interval
over test images and the paired difference to Cell-only (same resampled images for every variant).

A variant whose run directory already holds a finished run with the same options is not retrained,
and an interrupted one resumes from its ``last.pt``, so the command can be rerun after a stop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from evaluation import score, write_json_atomic
from evaluation.metrics import COUNT_KEYS, metrics_from_counts

from .checkpoint import load_checkpoint, read_checkpoint
from evaluation.pairs import Pair
from evaluation.release import ReleaseDataset

from .data import synthesize_dataset
from .inference import DetectionSettings, ground_truth_points, predict_points
from .model import CellTissueModel
from .train import RESUME_OVERRIDES, TrainingOptions, data_resolution, fit, resolve_device, scoring_radius_px

EFFECT_VARIANTS = ("cell-only", "pred-to-inter-2", "tissue-label-leaking")
REQUIRED_GAIN = {"pred-to-inter-2": 4.0, "tissue-label-leaking": 8.0}  # mF1 points over Cell-only
PAPER_TEST_MF1 = {"cell-only": 64.44, "pred-to-inter-2": 71.23, "tissue-label-leaking": 74.20}


def evaluate(
    checkpoint: Path,
    data: Path,
    split: str,
    settings: DetectionSettings,
    device: torch.device,
    batch_size: int,
    progress: bool = True,
) -> dict:
    """Score a checkpoint on a split of a release-layout dataset (see :func:`evaluate_pairs`)."""
    model = load_checkpoint(checkpoint, map_location=device)
    return evaluate_pairs(model, ReleaseDataset(data, split), settings, batch_size, progress)


def evaluate_pairs(
    model: CellTissueModel,
    pairs: Sequence[Pair],
    settings: DetectionSettings,
    batch_size: int,
    progress: bool = True,
) -> dict:
    """Score a model on pairs: aggregates, per-image counts (arrays) and inference throughput.

    The scoring radius is 3 um at the nominal resolution of the pairs' cell patch side (15 px at
    1024 px, scaled with the side).
    """
    start = time.perf_counter()
    predictions = predict_points(model, pairs, settings=settings, batch_size=batch_size, progress=progress, total=len(pairs))
    seconds = time.perf_counter() - start
    truth, count = ground_truth_points(pairs)
    report = score(predictions, truth, count, radius_px=scoring_radius_px(data_resolution(pairs[0])[0]))
    counts = {key: np.array([image[key] for image in report.results], dtype=np.int64) for key in COUNT_KEYS}
    return {"aggregates": report.aggregates, "counts": counts, "pairs_per_second": len(pairs) / seconds}


def bootstrap_mf1(counts: dict[str, np.ndarray], resamples: np.ndarray) -> np.ndarray:
    """mF1 of each resample of images.

    Parameters
    ----------
    counts : dict
        ``COUNT_KEYS`` -> per-image counts, shape (n_images,).
    resamples : ndarray, shape (B, n_images), int
        Image indices drawn with replacement, one row per resample.

    Returns
    -------
    ndarray, shape (B,)
        mF1 computed with the leaderboard rule on the summed counts of each resample.
    """
    summed = {key: values[resamples].sum(axis=1) for key, values in counts.items()}
    return np.array([metrics_from_counts({k: v[b] for k, v in summed.items()})["mF1"] for b in range(len(resamples))])


def interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def effect_rows(results: dict[str, dict], resample_count: int, seed: int) -> list[dict]:
    """Table rows (numbers x 100) with bootstrap intervals; the same resamples serve every variant."""
    n_images = len(next(iter(results.values()))["counts"]["TP/BC"])
    resamples = np.random.default_rng(seed).integers(0, n_images, size=(resample_count, n_images))
    boot = {variant: bootstrap_mf1(result["counts"], resamples) for variant, result in results.items()}
    rows = []
    for variant, result in results.items():
        aggregates = result["aggregates"]
        row = {
            "variant": variant,
            "mF1": 100 * aggregates["mF1"],
            "mF1_ci": tuple(100 * v for v in interval(boot[variant])),
            "F1/BC": 100 * aggregates["F1/BC"],
            "F1/TC": 100 * aggregates["F1/TC"],
        }
        if "cell-only" in results and variant != "cell-only":
            row["gain"] = 100 * (aggregates["mF1"] - results["cell-only"]["aggregates"]["mF1"])
            row["gain_ci"] = tuple(100 * v for v in interval(boot[variant] - boot["cell-only"]))
        rows.append(row)
    return rows


def markdown_table(rows: list[dict], n_images: int, resample_count: int) -> str:
    lines = [
        f"| Variant | mF1 | 95% CI ({n_images} test images) | F1/BC | F1/TC | mF1 gain over Cell-only (95% CI) "
        "| required gain | paper, OCELOT test mF1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        gain = f"{row['gain']:+.2f} ({row['gain_ci'][0]:+.2f}, {row['gain_ci'][1]:+.2f})" if "gain" in row else "-"
        required = f"+{REQUIRED_GAIN[row['variant']]:.0f}" if row["variant"] in REQUIRED_GAIN else "-"
        paper = f"{PAPER_TEST_MF1[row['variant']]:.2f}" if row["variant"] in PAPER_TEST_MF1 else "-"
        lines.append(
            f"| {row['variant']} | {row['mF1']:.2f} | {row['mF1_ci'][0]:.2f} - {row['mF1_ci'][1]:.2f} "
            f"| {row['F1/BC']:.2f} | {row['F1/TC']:.2f} | {gain} | {required} | {paper} |"
        )
    lines.append("")
    lines.append(
        f"mF1 and F1 x 100 on the synthetic test split, scored by `evaluation.score` (3 um radius); intervals: "
        f"percentile bootstrap over test images, {resample_count} resamples, paired across variants."
    )
    return "\n".join(lines)


def _finished(run: Path, options: TrainingOptions) -> bool:
    summary = run / "summary.json"
    if not (summary.exists() and (run / "best.pt").exists()):
        return False
    stored = json.loads(summary.read_text())
    return stored.get("options") == asdict(options) and stored.get("epochs") == options.epochs


def _resumable(run: Path, options: TrainingOptions) -> bool:
    if not (run / "last.pt").exists():
        return False
    stored = read_checkpoint(run / "last.pt")["options"]
    ignored = set(RESUME_OVERRIDES)
    return {k: v for k, v in stored.items() if k not in ignored} == {
        k: v for k, v in asdict(options).items() if k not in ignored
    }


def reproduce(
    out: Path,
    template: TrainingOptions,
    *,
    data: Path | None = None,
    pairs: tuple[int, int, int] = (96, 24, 48),
    size: int = 256,
    data_seed: int = 0,
    variants: tuple[str, ...] = EFFECT_VARIANTS,
    resamples: int = 2000,
    progress: bool = True,
) -> dict:
    """Run the whole experiment; returns the result document (also ``OUT/effect.json``, ``OUT/effect.md``)."""
    out.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = out / "data"
        if not (data / "metadata.json").exists():
            print(f"synthesizing {pairs} pairs (train, val, test) at {size} px into {data}", flush=True)
            synthesize_dataset(
                data, pairs, size=size, seed=data_seed, progress=progress, workers=max(1, template.workers)
            )
    device = resolve_device(template.device)
    results, runs = {}, {}
    for variant in variants:
        run = out / variant
        options = replace(template, data=str(data), out=str(run), variant=variant)
        start = time.perf_counter()
        if _finished(run, options):
            print(f"{variant}: finished run found in {run}, not retrained", flush=True)
        else:
            resume = _resumable(run, options)
            print(f"{variant}: {'resuming' if resume else 'training'} in {run}", flush=True)
            fit(options, resume=resume, progress=progress)
        train_seconds = time.perf_counter() - start
        history = json.loads((run / "history.json").read_text())
        result = evaluate(run / "best.pt", data, "test", options.detection(), device, options.batch_size, progress)
        best = read_checkpoint(run / "best.pt")
        runs[variant] = {
            "epochs_trained": len(history),
            "best_epoch": best["epoch"],
            "val_mF1": best["val"]["mF1"],
            "train_pairs_per_second": float(np.mean([r["train_pairs_per_second"] for r in history])),
            "wall_seconds_this_call": train_seconds,
            "test_pairs_per_second": result["pairs_per_second"],
        }
        print(
            f"{variant}: test mF1 {result['aggregates']['mF1']:.4f} (best epoch {best['epoch']}, val mF1 "
            f"{best['val']['mF1']:.4f}); train {runs[variant]['train_pairs_per_second']:.2f} pairs/s, "
            f"test inference {result['pairs_per_second']:.2f} pairs/s on {device}",
            flush=True,
        )
        results[variant] = result
    rows = effect_rows(results, resamples, template.seed)
    n_images = len(next(iter(results.values()))["counts"]["TP/BC"])
    table = markdown_table(rows, n_images, resamples)
    document = {
        # sys.argv[0] is this package's __main__.py; name the command the way it is typed.
        "command": shlex.join(["python", "-m", __package__, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "data": str(data),
        "options": asdict(template),
        "rows": rows,
        "runs": runs,
        "test_aggregates": {variant: result["aggregates"] for variant, result in results.items()},
    }
    write_json_atomic(out / "effect.json", document)
    (out / "effect.md").write_text(f"{table}\n\nCommand: `{document['command']}`\nMachine: {document['machine']}\n")
    print(table, flush=True)
    return document


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``reproduce``."""
    defaults = TrainingOptions(data="", out="")
    parser = subparsers.add_parser(
        "reproduce",
        help="train Cell-only, Pred-to-inter-2 and Tissue-label-leaking on synthetic data and tabulate the effect",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="experiment directory (data/, one run per variant, effect.md)")
    parser.add_argument("--data", type=Path, default=None, help="use this release-layout dataset instead of synthesizing")
    parser.add_argument("--pairs", type=int, nargs=3, default=(96, 24, 48), metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--size", type=int, default=256, help="synthetic patch side in px")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(EFFECT_VARIANTS), choices=list(EFFECT_VARIANTS))
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr-tissue", type=float, default=defaults.lr_tissue)
    parser.add_argument("--lr-cell", type=float, default=defaults.lr_cell)
    parser.add_argument("--dropout-tissue", type=float, default=defaults.dropout_tissue)
    parser.add_argument("--dropout-cell", type=float, default=defaults.dropout_cell)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training and bootstrap seed")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threshold", type=float, default=defaults.threshold)
    parser.add_argument("--min-distance-um", type=float, default=defaults.min_distance_um)
    parser.add_argument("--checkpoint-dtype", choices=("float32", "float16", "int8"), default=defaults.checkpoint_dtype)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    template = TrainingOptions(
        data="",
        out="",
        encoder=args.encoder,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_tissue=args.lr_tissue,
        lr_cell=args.lr_cell,
        dropout_tissue=args.dropout_tissue,
        dropout_cell=args.dropout_cell,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        threshold=args.threshold,
        min_distance_um=args.min_distance_um,
        checkpoint_dtype=args.checkpoint_dtype,
    )
    reproduce(
        args.out,
        template,
        data=args.data,
        pairs=tuple(args.pairs),
        size=args.size,
        data_seed=args.data_seed,
        variants=tuple(args.variants),
        resamples=args.resamples,
        progress=not args.quiet,
    )
    return 0
