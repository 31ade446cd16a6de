"""Size and speed of the Pred-to-inter-2 model: parameters, checkpoint bytes per storage dtype, and
training / inference throughput (model only, random inputs) at one patch size on one device.

Usage: python scripts/benchmark_model.py [--encoders resnet18 resnet34] [--size 256]
                                         [--batch-size 8] [--device cpu] [--steps 3]
                                         [--variant pred-to-inter-2] [--precision auto]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from baseline_algorithm.checkpoint import WEIGHT_DTYPES, save_checkpoint
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.runtime import PRECISIONS, autocast, memory_format, resolve_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_training import (  # noqa: E402  (a sibling script)
    pairs_per_second,
    random_batch,
    training_pairs_per_second,
)


def measure(
    encoder: str,
    variant: str,
    size: int,
    batch_size: int,
    steps: int,
    device: torch.device,
    precision: str,
) -> dict:
    config = ModelConfig(variant=variant, encoder=encoder, patch_size=size)
    torch.manual_seed(0)
    model = CellTissueModel(config)
    row = {"encoder": encoder, "parameters": sum(p.numel() for p in model.parameters())}
    with tempfile.TemporaryDirectory() as folder:
        for dtype in WEIGHT_DTYPES:
            row[f"{dtype} MB"] = (
                save_checkpoint(Path(folder) / f"{dtype}.pt", model, weights_dtype=dtype) / 1e6
            )
    row["train pairs/s"] = training_pairs_per_second(config, batch_size, steps, device, precision)
    model.to(device, memory_format=memory_format(precision)).eval()
    inputs = random_batch(batch_size, size, device)
    arguments = [inputs[k] for k in ("cell_image", "tissue_image", "cell_box", "tissue_target")]

    @torch.inference_mode()
    def inference_step():
        with autocast(device, precision):
            model(*arguments).cell_logits.float().log_softmax(dim=1)

    row["inference pairs/s"] = pairs_per_second(inference_step, batch_size, steps, device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", nargs="+", default=["resnet18", "resnet34"])
    parser.add_argument("--variant", default="pred-to-inter-2")
    parser.add_argument("--size", type=int, default=256, help="patch side in px")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="as train --precision, for both steps",
    )
    args = parser.parse_args()
    runtime = resolve_runtime(args.device, args.precision)
    print(f"benchmark: {runtime}", file=sys.stderr)
    device, precision = torch.device(runtime.device), runtime.precision
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = [
        measure(e, args.variant, args.size, args.batch_size, args.steps, device, precision)
        for e in args.encoders
    ]
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    print(
        f"{args.variant}, {args.size} px, batch {args.batch_size}, {precision}, {name}, "
        f"torch {torch.__version__}\n"
    )
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [
            f"{v:,}" if isinstance(v, int) else f"{v:.1f}" if isinstance(v, float) else str(v)
            for v in row.values()
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
