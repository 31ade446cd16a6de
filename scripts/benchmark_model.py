"""Size and speed of the Pred-to-inter-2 model: parameters, checkpoint bytes per storage dtype, and
training / inference throughput (model only, random inputs) at one patch size on one device.

Usage: python scripts/benchmark_model.py [--encoders resnet18 resnet34] [--size 256]
                                        [--batch-size 8]
                                         [--device cpu] [--steps 3] [--variant pred-to-inter-2]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from baseline_algorithm.checkpoint import WEIGHT_DTYPES, save_checkpoint
from baseline_algorithm.inference import autocast
from baseline_algorithm.losses import CellTissueDiceLoss
from baseline_algorithm.model import CellTissueModel, ModelConfig


def batch(size: int, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    side = size / 4
    return {
        "cell_image": torch.randn(batch_size, 3, size, size, generator=generator).to(device),
        "tissue_image": torch.randn(batch_size, 3, size, size, generator=generator).to(device),
        "cell_box": torch.tensor(
            [[size / 2 - side / 2, size / 2 - side / 2, size / 2 + side / 2, size / 2 + side / 2]]
            * batch_size
        ).to(device),
        "tissue_label": torch.randint(0, 2, (batch_size, size, size), generator=generator).to(
            device
        ),
        "cell_target": torch.randint(0, 3, (batch_size, size, size), generator=generator).to(
            device
        ),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pairs_per_second(step, batch_size: int, steps: int, device: torch.device) -> float:
    step()  # warm-up (allocations, cuDNN autotuning)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def measure(
    encoder: str, variant: str, size: int, batch_size: int, steps: int, device: torch.device
) -> dict:
    model = CellTissueModel(ModelConfig(variant=variant, encoder=encoder, patch_size=size)).to(
        device
    )
    row = {"encoder": encoder, "parameters": sum(p.numel() for p in model.parameters())}
    with tempfile.TemporaryDirectory() as folder:
        for dtype in WEIGHT_DTYPES:
            row[f"{dtype} MB"] = (
                save_checkpoint(Path(folder) / f"{dtype}.pt", model, weights_dtype=dtype) / 1e6
            )
    inputs = batch(size, batch_size, device)
    arguments = [inputs[k] for k in ("cell_image", "tissue_image", "cell_box", "tissue_label")]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = CellTissueDiceLoss()

    def train_step():
        with autocast(device):
            output = model(*arguments)
        loss = loss_fn(output, inputs["cell_target"], inputs["tissue_label"])["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.inference_mode()
    def inference_step():
        with autocast(device):
            model(*arguments).cell_logits.float().log_softmax(dim=1)

    model.train()
    row["train pairs/s"] = pairs_per_second(train_step, batch_size, steps, device)
    model.eval()
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
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = [
        measure(e, args.variant, args.size, args.batch_size, args.steps, device)
        for e in args.encoders
    ]
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu, {torch.get_num_threads()} threads"
    )
    print(
        f"{args.variant}, {args.size} px, batch {args.batch_size}, {name}, "
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
