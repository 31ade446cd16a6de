#!/usr/bin/env python
"""Training throughput of each variant and precision: optimiser steps on a fixed batch, pairs/s.

Measures what one training step costs (:func:`baseline_algorithm.train.training_step`: forward
under the precision's autocast, Dice loss, backward, Adam) for every variant, without data
loading (which runs in DataLoader workers alongside), to size runs such as
``scripts/reproduce_paper_tables.sh`` and to choose ``train --precision``. One warm-up step, then
``--steps`` timed steps; with several ``--precisions`` each is timed on the same batch and the
ratio of each to the first is printed.

``--loading-pairs N`` also times the data loading a DataLoader worker does per pair
(:class:`baseline_algorithm.train.TrainingPairs`: reading, targets, augmentation) on N
synthesized pairs at ``--size``, in CPU seconds of this process on one thread.

Usage: python scripts/benchmark_training.py [--size 256] [--encoder resnet18] [--batch 8]
       [--steps 3] [--variants ...] [--precisions float32 bfloat16] [--device cpu]
       [--loading-pairs 0]
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from baseline_algorithm.data import synthesize_dataset
from baseline_algorithm.losses import CellTissueDiceLoss
from baseline_algorithm.model import VARIANTS, CellTissueModel, ModelConfig
from baseline_algorithm.runtime import PRECISIONS, resolve_runtime
from baseline_algorithm.train import TrainingPairs, prepare_for_training, training_step
from evaluation.release import ReleaseDataset


def random_batch(batch: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A training batch of random pairs of ``size`` px, as ``training_step`` takes it: cell and
    tissue images (values in 0..1), the cell box (a quarter of the tissue patch's side, centred),
    cell and tissue targets."""
    side = size / 4
    return {
        "cell_image": torch.rand(batch, 3, size, size, device=device),
        "tissue_image": torch.rand(batch, 3, size, size, device=device),
        "cell_box": torch.tensor(
            [[1.5 * side, 1.5 * side, 2.5 * side, 2.5 * side]] * batch, device=device
        ),
        "cell_target": torch.randint(0, 3, (batch, size, size), device=device),
        "tissue_target": torch.randint(0, 2, (batch, size, size), device=device),
    }


def pairs_per_second(step, batch: int, steps: int, device: torch.device) -> float:
    """Pairs per second of ``steps`` calls of ``step`` (each on ``batch`` pairs) after one
    untimed call (allocations, kernel selection)."""

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return batch * steps / (time.perf_counter() - started)


def training_pairs_per_second(
    config: ModelConfig, batch: int, steps: int, device: torch.device, precision: str
) -> float:
    """Pairs per second of ``steps`` training steps on a fixed random batch, after a warm-up."""
    torch.manual_seed(0)
    model = CellTissueModel(config).train()
    scaler = prepare_for_training(model, device, precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = CellTissueDiceLoss()
    pairs = random_batch(batch, config.patch_size, device)
    return pairs_per_second(
        lambda: training_step(model, pairs, optimizer, scaler, loss_fn, precision),
        batch,
        steps,
        device,
    )


def loading_cpu_seconds_per_pair(pairs: int, size: int) -> float:
    """CPU seconds per pair of :class:`TrainingPairs` on ``pairs`` synthetic pairs of ``size``
    px (one thread, as in a DataLoader worker), after one untimed pair."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as folder:
            data = synthesize_dataset(
                Path(folder) / "data", (pairs, 1, 1), size=size, seed=0, progress=False
            )
            dataset = TrainingPairs(ReleaseDataset(data, "train"), size, seed=0)
            dataset[0]
            started = time.process_time()
            for index in range(pairs):
                dataset[index]
            return (time.process_time() - started) / pairs
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--precisions", nargs="+", default=["auto"], choices=PRECISIONS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loading-pairs", type=int, default=0)
    args = parser.parse_args()
    runtimes = [resolve_runtime(args.device, name) for name in args.precisions]
    device = torch.device(runtimes[0].device)
    precisions = [runtime.precision for runtime in runtimes]
    print("benchmark: " + "; ".join(str(runtime) for runtime in runtimes), file=sys.stderr)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, {device}; {args.encoder}, {args.size} px, batch {args.batch}, "
        f"{args.steps} steps after one warm-up"
    )
    ratios = [f"{name} / {precisions[0]} time" for name in precisions[1:]]
    header = ["variant"] + [f"{name} pairs/s" for name in precisions] + ratios
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for variant in args.variants:
        config = ModelConfig(variant=variant, encoder=args.encoder, patch_size=args.size)
        rates = [
            training_pairs_per_second(config, args.batch, args.steps, device, precision)
            for precision in precisions
        ]
        cells = [f"{rate:.2f}" for rate in rates] + [f"{rates[0] / rate:.2f}" for rate in rates[1:]]
        print(f"| {variant} | " + " | ".join(cells) + " |", flush=True)
    if args.loading_pairs > 0:
        seconds = loading_cpu_seconds_per_pair(args.loading_pairs, args.size)
        print(
            f"# data loading: {1000 * seconds:.1f} ms CPU per pair ({args.loading_pairs} "
            f"pairs at {args.size} px, one thread)"
        )


if __name__ == "__main__":
    main()
