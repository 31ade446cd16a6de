#!/usr/bin/env python
"""Throughput on a GPU: ``predict`` in pairs per second at several batch sizes, and training.

1. ``predict``: a model of the paper's configuration (DeepLabV3+ ResNet-34, Pred-to-inter-2, at
   ``--size`` px, untrained: throughput does not depend on the weights) is saved as a checkpoint,
   and a Grand Challenge input folder of ``--pairs`` pairs is stacked from test_data/input (its
   pairs repeated). :func:`baseline_algorithm.predict.predict`, the function behind the container's
   ``predict`` command, then runs on it once per ``--batch-sizes`` entry at ``--precision``;
   ``pairs_per_s`` counts the whole call: reading, inference, peak finding, writing the JSON, and
   loading the model. A run on a small folder first warms up the device (CUDA context, kernels).
2. training: optimiser steps (:func:`baseline_algorithm.train.training_step` at
   ``--train-precision``) of the same configuration on a fixed random batch of ``--train-batch``
   pairs, without data loading; ``pairs_per_s`` is pairs per second over ``--train-steps`` steps
   after one warm-up step.

``scripts/benchmark_gpu.sh`` runs this on a GPU machine with the defaults. ``--device cpu`` with a
small ``--size`` and ``--pairs`` runs every step on the CPU (the test of this script).

Usage: python scripts/benchmark_gpu.py --json OUT [--device cuda] [--pairs 256] [--size 1024]
       [--batch-sizes 1 4 16] [--precision bfloat16] [--train-batch 16] [--train-steps 10]
       [--train-precision auto]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from baseline_algorithm.checkpoint import save_checkpoint
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.predict import PredictOptions, predict
from baseline_algorithm.runtime import PRECISIONS, resolve_runtime
from evaluation.constants import CELL_MPP, PATCH_SIZE_PX
from evaluation.metadata import read_gc_metadata
from evaluation.stacked import iter_gc_input_pairs, write_stacked_tiff

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_training import training_pairs_per_second  # noqa: E402  (a sibling script)

REPO = Path(__file__).resolve().parents[1]
TEST_INPUT = REPO / "test_data" / "input"


def paper_config(size: int) -> ModelConfig:
    """The paper's model at ``size`` px, covering the same field as 1024 px at 0.2 um/px."""
    return ModelConfig(patch_size=size, cell_mpp=CELL_MPP * PATCH_SIZE_PX / size)


def write_input(folder: Path, pairs: int, source: Path = TEST_INPUT) -> Path:
    """A Grand Challenge input folder of ``pairs`` pairs: ``source``'s pairs, repeated."""
    originals = list(iter_gc_input_pairs(source))
    metadata = read_gc_metadata(source)
    chosen = list(itertools.islice(itertools.cycle(range(len(originals))), pairs))
    for kind, attribute in (("cell_patches", "cell_image"), ("tissue_patches", "tissue_image")):
        (folder / "images" / kind).mkdir(parents=True)
        stack = np.stack([getattr(originals[i], attribute) for i in chosen])
        write_stacked_tiff(folder / "images" / kind / "000.tif", stack)
    (folder / "metadata.json").write_text(json.dumps([metadata[i] for i in chosen]))
    return folder


def predict_throughput(
    folder: Path, checkpoint: Path, pairs: int, batch_size: int, device: str, precision: str
) -> dict:
    """One ``predict`` call over ``folder``; wall seconds and pairs per second."""
    started = time.perf_counter()
    predict(
        PredictOptions(
            input=folder,
            output=folder.parent / f"points_{batch_size}.json",
            checkpoint=checkpoint,
            device=device,
            precision=precision,
            batch_size=batch_size,
            quiet=True,
        )
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "pairs_per_s": pairs / seconds}


def training_throughput(
    config: ModelConfig, batch: int, steps: int, device: torch.device, precision: str
) -> dict:
    """Pairs per second of training steps on a fixed random batch (see the module docstring)."""
    return {
        "batch": batch,
        "steps": steps,
        "precision": precision,
        "pairs_per_s": training_pairs_per_second(config, batch, steps, device, precision),
    }


def machine(device: torch.device) -> dict:
    described = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": device.type,
    }
    if device.type == "cuda":
        described["gpu"] = torch.cuda.get_device_name(device)
        described["cuda"] = torch.version.cuda
    return described


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="write the figures here")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--pairs", type=int, default=256, help="pairs in the predict input")
    parser.add_argument("--size", type=int, default=PATCH_SIZE_PX, help="model patch size (px)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--precision", choices=("float32", "bfloat16", "float16"), default="bfloat16"
    )
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument(
        "--train-precision",
        choices=PRECISIONS,
        default="auto",
        help="as train --precision (auto: bfloat16 on CUDA, float16 on a GPU without bfloat16)",
    )
    parser.add_argument("--train-steps", type=int, default=10)
    args = parser.parse_args(argv)
    if min(args.pairs, args.size, args.train_steps, *args.batch_sizes) < 1:
        parser.error("--pairs, --size, --batch-sizes, --train-steps must be >= 1")
    if args.train_batch < 2:  # batch norm in training needs two samples per channel
        parser.error(f"--train-batch must be >= 2, got {args.train_batch}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device")
    config = paper_config(args.size)
    result: dict = {
        "machine": machine(device),
        "model": {"encoder": config.encoder, "variant": config.variant, "size": args.size},
        "predict": {"pairs": args.pairs, "precision": args.precision, "batches": {}},
    }
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoint = scratch / "paper_config.pt"
        torch.manual_seed(0)
        save_checkpoint(checkpoint, CellTissueModel(config).eval())
        warmup_pairs = max(args.batch_sizes)
        warmup = write_input(scratch / "warmup" / "input", warmup_pairs)
        predict_throughput(
            warmup, checkpoint, warmup_pairs, warmup_pairs, args.device, args.precision
        )
        folder = write_input(scratch / "run" / "input", args.pairs)
        for batch_size in args.batch_sizes:
            result["predict"]["batches"][str(batch_size)] = predict_throughput(
                folder, checkpoint, args.pairs, batch_size, args.device, args.precision
            )
    result["training"] = training_throughput(
        config,
        args.train_batch,
        args.train_steps,
        device,
        resolve_runtime(str(device), args.train_precision).precision,
    )
    text = json.dumps(result, indent=2)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
