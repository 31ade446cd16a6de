#!/usr/bin/env python
"""Training throughput of each variant: optimiser steps on a fixed batch, pairs per second.

Measures what one training step costs (forward, Dice loss, backward, Adam) for every variant,
without data loading (which runs in DataLoader workers alongside), to size runs such as
``scripts/reproduce_paper_tables.sh``. One warm-up step, then the median of ``--steps`` timed
steps.

Usage: python scripts/benchmark_training.py [--size 256] [--encoder resnet18] [--batch 8]
       [--steps 3] [--variants ...] [--device cpu]
"""

import argparse
import os
import platform
import statistics
import time

import torch

from baseline_algorithm.losses import CellTissueDiceLoss
from baseline_algorithm.model import VARIANTS, CellTissueModel, ModelConfig


def random_batch(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A training batch of random pairs of ``size`` px: cell and tissue images (values in 0..1),
    the cell box (a quarter of the tissue patch's side, centred), cell and tissue targets."""
    cell = torch.rand(batch, 3, size, size, device=device)
    tissue = torch.rand(batch, 3, size, size, device=device)
    side = size / 4
    box = torch.tensor([[1.5 * side, 1.5 * side, 2.5 * side, 2.5 * side]] * batch, device=device)
    cell_target = torch.randint(0, 3, (batch, size, size), device=device)
    tissue_target = torch.randint(0, 2, (batch, size, size), device=device)
    return cell, tissue, box, cell_target, tissue_target


def step_seconds(
    variant: str, size: int, encoder: str, batch: int, steps: int, device: torch.device
) -> float:
    """Median wall time of one training step of ``variant`` on a random batch."""
    torch.manual_seed(0)
    model = CellTissueModel(ModelConfig(variant=variant, encoder=encoder, patch_size=size))
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = CellTissueDiceLoss()
    cell, tissue, box, cell_target, tissue_target = random_batch(batch, size, device)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        output = model(cell, tissue, box, tissue_target)
        loss = loss_fn(output, cell_target, tissue_target)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
        f"threads, {device}; {args.encoder}, {args.size} px, batch {args.batch}, median of "
        f"{args.steps} steps"
    )
    print("| variant | s per step | pairs/s |")
    print("|---|---:|---:|")
    for variant in args.variants:
        seconds = step_seconds(variant, args.size, args.encoder, args.batch, args.steps, device)
        print(f"| {variant} | {seconds:.2f} | {args.batch / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
