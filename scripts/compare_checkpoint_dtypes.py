"""What storing a checkpoint's weights as float16 or int8 costs: file size and test scores.

Re-saves a trained checkpoint with each storage dtype and scores each copy on a split of a
release-layout dataset with the inference path of the container.

Usage: python scripts/compare_checkpoint_dtypes.py CHECKPOINT DATA [--split test] [--device cpu]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from baseline_algorithm.checkpoint import (
    WEIGHT_DTYPES,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from baseline_algorithm.inference import DetectionSettings
from baseline_algorithm.reproduce import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("data", type=Path, help="release-layout dataset root")
    parser.add_argument("--split", default="test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    payload = read_checkpoint(args.checkpoint)
    model = model_from_checkpoint(payload)
    settings = DetectionSettings(**payload.get("detection", {}))
    device = torch.device(args.device)
    print(
        f"{args.checkpoint} ({model.config.variant}, {model.config.encoder}) "
        f"on {args.data} {args.split}\n"
    )
    print("| weights | file MB | mF1 | F1/BC | F1/TC |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in WEIGHT_DTYPES:
            path = Path(folder) / f"{dtype}.pt"
            size = save_checkpoint(
                path, model, weights_dtype=dtype, detection=payload.get("detection", {})
            )
            result = evaluate(
                path, args.data, args.split, settings, device, args.batch_size, progress=False
            )
            scores = result["aggregates"]
            print(
                f"| {dtype} | {size / 1e6:.1f} | {scores['mF1']:.4f} | {scores['F1/BC']:.4f} "
                f"| {scores['F1/TC']:.4f} |"
            )


if __name__ == "__main__":
    main()
