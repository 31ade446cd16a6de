#!/usr/bin/env python
"""CPU and wall time per pair of the baseline detector at each precision, and how far bf16 moves it.

Runs the baseline's inference path (:func:`baseline_algorithm.inference.cell_log_probabilities`,
then :func:`~baseline_algorithm.inference.cells_from_maps`) on ``--pairs`` synthetic full-size
(1024 px) pairs, each pair at every precision in turn (interleaved, so that a change in machine load
hits all precisions alike). The model is the shipped checkpoint, or with ``--paper-config`` an
untrained DeepLabV3+ ResNet-34 Pred-to-inter-2 at 1024 px and 0.2 um/px (the paper's
configuration; its weights are random, so its points are few and its probability maps are the
better measure of agreement). Each precision runs with the memory layout the detector gives it
(:func:`~baseline_algorithm.inference.memory_format`), or the one ``--layout`` names for all.

CPU time is ``getrusage(RUSAGE_SELF)`` user + system (all threads), wall time ``perf_counter``,
both per pair and without reading the pair. The points of the first precision other than float32
are scored against the float32 points with the challenge's rule (``agreement_f1``: mF1, float32 as
the ground truth); ``max_abs_probability_difference`` is the largest absolute difference of their
cell-class probability maps.

Usage: python scripts/benchmark_inference.py [--paper-config] [--pairs 4]
       [--precision float32 bfloat16] [--warmup 1] [--layout detector] [--json OUT]

Writes ``{"float32": {"cpu_s_per_pair": ..., "wall_s_per_pair": ..., "points": ...},
"bfloat16": {...}, "agreement_f1": ..., "max_abs_probability_difference": ...,
"cpu_ratio": {"bfloat16": ...}, "setup": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair
from baseline_algorithm.inference import (
    SHIPPED_CHECKPOINT,
    DetectionSettings,
    cell_log_probabilities,
    cells_from_maps,
    load_model,
)
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.runtime import cpu_flags, memory_format
from evaluation import PointSet, score
from evaluation.constants import PATCH_SIZE_PX

REFERENCE = "float32"
#: ``--layout`` choices: the detector's own per precision, or one memory format for all.
LAYOUTS = {"detector": None, "nchw": torch.contiguous_format, "channels-last": torch.channels_last}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def paper_model(seed: int = 0) -> tuple[CellTissueModel, DetectionSettings]:
    """An untrained model of the paper's configuration (ModelConfig's defaults) in eval mode."""
    torch.manual_seed(seed)
    return CellTissueModel(ModelConfig()).eval(), DetectionSettings()


def point_set(cells: list[np.ndarray]) -> PointSet:
    """Per-pair (N, 4) arrays of ``x, y, cls, probability`` as one PointSet, pair k = image k."""
    return PointSet.concatenate(
        [
            PointSet.from_arrays(
                np.full(len(rows), k),
                rows[:, :2].astype(np.int64),
                rows[:, 2].astype(np.int64),
                rows[:, 3],
            )
            for k, rows in enumerate(cells)
        ]
    )


def benchmark(
    model: CellTissueModel,
    settings: DetectionSettings,
    pairs: int,
    precisions: list[str],
    warmup: int,
    progress: bool = True,
    layout: str = "detector",
) -> dict:
    """Time every precision on the same ``pairs`` synthetic pairs, interleaved; see the module."""
    synthetic = SyntheticConfig(size=PATCH_SIZE_PX)
    device = torch.device("cpu")
    totals = {p: {"cpu": 0.0, "wall": 0.0} for p in precisions}
    compared = next((p for p in precisions if p != REFERENCE), None)
    cells = {p: [] for p in precisions}
    largest_difference = 0.0
    for index in tqdm(range(warmup + pairs), desc="pairs", disable=not progress):
        pair = synthesize_pair(f"{index:03d}", 0, index, "test", synthetic)
        probabilities = {}
        for precision in precisions:
            model.to(memory_format=LAYOUTS[layout] or memory_format(precision))
            cpu, wall = cpu_seconds(), time.perf_counter()
            maps = cell_log_probabilities(model, [pair], device, precision, LAYOUTS[layout])
            found = cells_from_maps(maps, [pair], model.config, settings)
            wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
            if index < warmup:
                continue
            totals[precision]["cpu"] += cpu
            totals[precision]["wall"] += wall
            cells[precision].extend(found)
            probabilities[precision] = np.exp(maps[:, 1:])
        if REFERENCE in probabilities and compared in probabilities:
            difference = np.abs(probabilities[compared] - probabilities[REFERENCE]).max()
            largest_difference = max(largest_difference, float(difference))
    result: dict = {}
    for precision in precisions:
        result[precision] = {
            "cpu_s_per_pair": totals[precision]["cpu"] / pairs,
            "wall_s_per_pair": totals[precision]["wall"] / pairs,
            "points": sum(len(rows) for rows in cells[precision]),
        }
    if REFERENCE in precisions and compared is not None:
        result["cpu_ratio"] = {
            p: result[p]["cpu_s_per_pair"] / result[REFERENCE]["cpu_s_per_pair"]
            for p in precisions
            if p != REFERENCE
        }
        reference = point_set(cells[REFERENCE])
        result["agreement_f1"] = (
            score(point_set(cells[compared]), reference, pairs).aggregates["mF1"]
            if len(reference)
            else None
        )
        result["max_abs_probability_difference"] = largest_difference
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--paper-config",
        action="store_true",
        help="an untrained ResNet-34 model at 1024 px instead of the shipped checkpoint",
    )
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    parser.add_argument("--pairs", type=int, default=4, help="timed pairs (default 4)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed pairs run first at every precision"
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=("float32", "bfloat16", "float16"),
        default=["float32", "bfloat16"],
    )
    parser.add_argument(
        "--layout",
        choices=tuple(LAYOUTS),
        default="detector",
        help="memory layout of model and inputs: the detector's per precision (default) or one "
        "for all precisions",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.warmup < 0:
        parser.error(f"--pairs must be >= 1 and --warmup >= 0, got {args.pairs}, {args.warmup}")
    if args.paper_config:
        model, settings = paper_model()
        name = "paper configuration (untrained resnet34, 1024 px)"
    else:
        model, settings = load_model(args.checkpoint)
        name = f"checkpoint {args.checkpoint.name}"
    result = benchmark(
        model,
        settings,
        args.pairs,
        args.precision,
        args.warmup,
        progress=not args.quiet,
        layout=args.layout,
    )
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    result["setup"] = {
        "model": name,
        "patch_size": model.config.patch_size,
        "pairs": args.pairs,
        "warmup": args.warmup,
        "layout": args.layout,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": flags,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
