"""``train``: fit a variant on a dataset in the release layout, as in the paper (Sec. 4 and 5).

One epoch = one pass over the train split with the five augmentations; after each epoch the val
split is scored with :func:`evaluation.score` (mF1 at 3 um) through the same inference path as the
container. ``OUT/best.pt`` is the epoch with the best val mF1, ``OUT/last.pt`` the state to resume
from, ``OUT/history.json`` the per-epoch losses, scores and throughput.

Every epoch is seeded from ``(seed, epoch)`` (shuffling, augmentation, dropout), so a resumed run
continues as the uninterrupted one would.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from evaluation import score, write_json_atomic

from .augment import PhotometricRanges, Sample, augment
from .checkpoint import WEIGHT_DTYPES, model_from_checkpoint, read_checkpoint, save_checkpoint
from evaluation.errors import DataError
from evaluation.pairs import Pair
from evaluation.release import ReleaseDataset
from .inference import (
    DetectionSettings,
    autocast,
    ground_truth_points,
    image_tensor,
    label_tensor,
    normalise,
    predict_points,
    scaled_box,
)
from .labels import cell_label_map, disk_radius_px, tissue_target
from .losses import CellTissueDiceLoss
from .model import TISSUE_IGNORE_INDEX, VARIANTS, CellTissueModel, ModelConfig

SCORING_RADIUS_UM = 3.0
NOMINAL_CELL_MPP_AT_1024 = 0.2  # the leaderboard's 15 px radius is 3 um at this resolution


RESUME_OVERRIDES = ("data", "out", "epochs", "workers", "device", "max_minutes")


class TrainingError(ValueError):
    """Training cannot start (bad options, nothing to resume); ``str()`` is one line."""


@dataclass(frozen=True)
class TrainingOptions:
    """Options of one training run (the ``train`` command's flags); stored in every checkpoint.

    Learning rates are Adam's; ``size`` None means the data's own patch size (pixels);
    ``max_minutes`` stops training after the first epoch that ends later than that (wall clock,
    counted from the start of this call), for runs on a time budget.
    """

    data: str
    out: str
    variant: str = "pred-to-inter-2"
    encoder: str = "resnet34"
    epochs: int = 300
    batch_size: int = 8
    lr_tissue: float = 1e-3
    lr_cell: float = 5e-4
    dropout_tissue: float = 0.1
    dropout_cell: float = 0.3
    size: int | None = None
    seed: int = 0
    workers: int = 2
    device: str | None = None
    threshold: float = DetectionSettings.threshold
    min_distance_um: float = DetectionSettings.min_distance_um
    checkpoint_dtype: str = "float32"
    max_minutes: float | None = None

    def detection(self) -> DetectionSettings:
        return DetectionSettings(self.threshold, self.min_distance_um)


def pair_sample(pair: Pair, size: int) -> Sample:
    """Tensors of one pair at ``size`` x ``size`` px: images, disk labels, tissue targets, cell box."""
    height, width = pair.cell_image.shape[:2]
    points = np.asarray(pair.cell_points, dtype=np.int64).reshape(-1, 3).copy()
    # Point pixel centres follow the resampling of the cell patch.
    points[:, 0] = np.rint((points[:, 0] + 0.5) * size / width - 0.5)
    points[:, 1] = np.rint((points[:, 1] + 0.5) * size / height - 0.5)
    cell_target = cell_label_map(points, (size, size), disk_radius_px(size))
    if pair.tissue_mask is None:
        tissue = torch.full((size, size), TISSUE_IGNORE_INDEX, dtype=torch.int64)
    else:
        tissue = label_tensor(tissue_target(pair.tissue_mask), size)
    return Sample(
        cell_image=image_tensor(pair.cell_image, size),
        tissue_image=image_tensor(pair.tissue_image, size),
        cell_target=torch.from_numpy(cell_target.astype(np.int64)),
        tissue_target=tissue,
        cell_box=scaled_box(pair, size),
    )


class TrainingPairs(Dataset):
    """Pairs of a split as augmented :class:`Sample` dictionaries (random draws from torch's RNG)."""

    def __init__(self, pairs: Sequence[Pair], size: int, ranges: PhotometricRanges | None = PhotometricRanges()):
        self.pairs = pairs
        self.size = size
        self.ranges = ranges

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = pair_sample(self.pairs[index], self.size)
        if self.ranges is not None:
            sample = augment(sample, self.ranges)
        return {field.name: getattr(sample, field.name) for field in fields(Sample)}


def resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available on this machine")
    return device


def data_resolution(pair: Pair) -> tuple[int, float]:
    """Cell patch side (px) and pixel size (um, from the metadata's ``cell.resized_mpp_x``) of a pair."""
    try:
        mpp = float(pair.meta["cell"]["resized_mpp_x"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"pair {pair.name}: metadata has no cell.resized_mpp_x") from None
    return pair.cell_image.shape[1], mpp


def scoring_radius_px(data_size: int) -> float:
    """3 um in pixels of a cell patch of ``data_size`` px (15 px at 1024, the leaderboard's radius)."""
    return SCORING_RADIUS_UM / (NOMINAL_CELL_MPP_AT_1024 * 1024 / data_size)


def validate(
    model: CellTissueModel,
    pairs: Sequence[Pair],
    radius_px: float,
    settings: DetectionSettings,
    batch_size: int,
    progress: bool = True,
) -> dict:
    """Aggregates of :func:`evaluation.score` (mF1, F1/BC, ...) of ``model`` on ``pairs``."""
    model.eval()
    predictions = predict_points(
        model, pairs, settings=settings, batch_size=batch_size, progress=progress, total=len(pairs)
    )
    truth, count = ground_truth_points(pairs)
    return score(predictions, truth, count, radius_px=radius_px).aggregates


def _seed_epoch(seed: int, epoch: int, generator: torch.Generator) -> None:
    torch.manual_seed(seed * 100_003 + epoch)
    generator.manual_seed(seed * 100_003 + epoch)


def _optimizer(model: CellTissueModel, options: TrainingOptions) -> torch.optim.Adam:
    groups = [{"params": model.cell_branch.parameters(), "lr": options.lr_cell}]
    if model.tissue_branch is not None:
        groups.append({"params": model.tissue_branch.parameters(), "lr": options.lr_tissue})
    return torch.optim.Adam(groups)


def train_one_epoch(
    model: CellTissueModel,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: CellTissueDiceLoss,
    device: torch.device,
    description: str,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``loader``; returns the mean losses and the throughput in pairs per second."""
    model.train()
    totals: dict[str, float] = {}
    pairs = 0
    start = time.perf_counter()
    with tqdm(loader, desc=description, unit="batch", disable=not progress, leave=False) as bar:
        for batch in bar:
            batch = {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
            with autocast(device):
                output = model(
                    normalise(batch["cell_image"], model.config),
                    normalise(batch["tissue_image"], model.config),
                    batch["cell_box"],
                    batch["tissue_target"],
                )
            losses = loss_fn(output, batch["cell_target"], batch["tissue_target"])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            size = len(batch["cell_image"])
            pairs += size
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value.item() * size
            bar.set_postfix(loss=f"{losses['loss'].item():.4f}")
    seconds = time.perf_counter() - start
    means = {f"{name}_loss" if name != "loss" else "loss": total / pairs for name, total in totals.items()}
    return {**means, "train_seconds": seconds, "train_pairs_per_second": pairs / seconds}


def fit(options: TrainingOptions, *, resume: bool = False, progress: bool = True) -> dict:
    """Train as configured by ``options``; returns the run summary (also written to ``OUT/summary.json``).

    With ``resume``, training continues from ``OUT/last.pt`` with its stored options except
    ``data``, ``out``, ``epochs``, ``workers`` and ``device``, which are taken from ``options``.
    """
    out = Path(options.out)
    state = None
    if resume:
        state = read_checkpoint(out / "last.pt")
        current = {name: getattr(options, name) for name in RESUME_OVERRIDES}
        options = TrainingOptions(**{**state["options"], **current})
    if options.variant not in VARIANTS:
        raise TrainingError(f"--variant {options.variant}: expected one of {', '.join(VARIANTS)}")
    if options.batch_size < 2:
        raise TrainingError(f"--batch-size {options.batch_size}: batch norm needs at least 2 pairs per batch")
    if options.checkpoint_dtype not in WEIGHT_DTYPES:
        raise TrainingError(f"--checkpoint-dtype {options.checkpoint_dtype}: expected one of {WEIGHT_DTYPES}")
    device = resolve_device(options.device)
    train_pairs = ReleaseDataset(options.data, "train")
    val_pairs = ReleaseDataset(options.data, "val")
    if len(train_pairs) < options.batch_size or not len(val_pairs):
        raise TrainingError(
            f"{options.data}: {len(train_pairs)} train / {len(val_pairs)} val pairs; need at least "
            f"--batch-size ({options.batch_size}) train pairs and one val pair"
        )
    data_size, data_mpp = data_resolution(train_pairs[0])
    size = options.size or data_size
    try:
        config = ModelConfig(
            variant=options.variant,
            encoder=options.encoder,
            dropout_tissue=options.dropout_tissue,
            dropout_cell=options.dropout_cell,
            patch_size=size,
            cell_mpp=data_mpp * data_size / size,
        )
    except ValueError as exc:
        raise TrainingError(str(exc)) from None

    torch.manual_seed(options.seed)
    if state is None:
        model = CellTissueModel(config)
    else:
        model = model_from_checkpoint(state)
    model.to(device)
    optimizer = _optimizer(model, options)
    use_fp16 = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler(device.type, enabled=use_fp16)
    history, best, start_epoch = [], {"mF1": -1.0, "epoch": None}, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    generator = torch.Generator()
    loader = DataLoader(
        TrainingPairs(train_pairs, size),
        batch_size=options.batch_size,
        shuffle=True,
        drop_last=True,  # a batch of one pair breaks batch norm after ASPP's global pooling
        num_workers=options.workers,
        pin_memory=device.type == "cuda",
        generator=generator,
    )
    loss_fn = CellTissueDiceLoss()
    radius_px = scoring_radius_px(data_size)
    settings = options.detection()
    summary = {"options": asdict(options), "config": config.to_dict(), "device": str(device), "radius_px": radius_px}
    started = time.perf_counter()
    for epoch in range(start_epoch, options.epochs):
        if options.max_minutes is not None and time.perf_counter() - started > 60 * options.max_minutes:
            tqdm.write(f"stopping before epoch {epoch + 1}: --max-minutes {options.max_minutes} reached")
            break
        _seed_epoch(options.seed, epoch, generator)
        record = {"epoch": epoch + 1}
        record |= train_one_epoch(
            model, loader, optimizer, scaler, loss_fn, device, f"epoch {epoch + 1}/{options.epochs}", progress
        )
        start = time.perf_counter()
        record |= validate(model, val_pairs, radius_px, settings, options.batch_size, progress)
        record["val_seconds"] = time.perf_counter() - start
        history.append(record)
        if record["mF1"] > best["mF1"]:
            best = {"mF1": record["mF1"], "epoch": epoch + 1}
            save_checkpoint(
                out / "best.pt",
                model,
                weights_dtype=options.checkpoint_dtype,
                epoch=epoch + 1,
                val=record,
                options=asdict(options),
                detection=asdict(settings),
            )
        save_checkpoint(
            out / "last.pt",
            model,
            epoch=epoch + 1,
            options=asdict(options),
            optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict(),
            history=history,
            best=best,
        )
        write_json_atomic(out / "history.json", history)
        tqdm.write(
            f"epoch {epoch + 1}: loss {record['loss']:.4f}  val mF1 {record['mF1']:.4f} "
            f"(BC {record['F1/BC']:.4f}, TC {record['F1/TC']:.4f})  best {best['mF1']:.4f} @ {best['epoch']}  "
            f"train {record['train_pairs_per_second']:.2f} pairs/s, val {record['val_seconds']:.1f} s"
        )
    summary |= {"best": best, "epochs": len(history), "best_checkpoint": str(out / "best.pt")}
    write_json_atomic(out / "summary.json", summary)
    return summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``."""
    defaults = TrainingOptions(data="", out="")
    parser = subparsers.add_parser(
        "train",
        help="train a model variant on a dataset in the release layout",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", required=True, help="dataset root (release layout: metadata.json, images/, annotations/)")
    parser.add_argument("--out", required=True, help="run directory (best.pt, last.pt, history.json, summary.json)")
    parser.add_argument("--variant", choices=list(VARIANTS), default=defaults.variant)
    parser.add_argument("--encoder", default=defaults.encoder, help="segmentation-models-pytorch encoder (random init)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr-tissue", type=float, default=defaults.lr_tissue, help="Adam learning rate, tissue branch")
    parser.add_argument("--lr-cell", type=float, default=defaults.lr_cell, help="Adam learning rate, cell branch")
    parser.add_argument("--dropout-tissue", type=float, default=defaults.dropout_tissue, help="spatial dropout rate")
    parser.add_argument("--dropout-cell", type=float, default=defaults.dropout_cell, help="spatial dropout rate")
    parser.add_argument("--size", type=int, default=None, help="training patch side in px (default: the data's)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="DataLoader worker processes")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--threshold", type=float, default=defaults.threshold, help="minimum foreground probability")
    parser.add_argument("--min-distance-um", type=float, default=defaults.min_distance_um, help="peak separation, um")
    parser.add_argument(
        "--checkpoint-dtype", choices=WEIGHT_DTYPES, default=defaults.checkpoint_dtype,
        help="storage of best.pt's weights (int8/float16 to ship a small file)",
    )
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch that passes this")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt with its stored options")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (one line per epoch only)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    names = {field.name for field in fields(TrainingOptions)}
    options = TrainingOptions(**{name: value for name, value in vars(args).items() if name in names})
    summary = fit(options, resume=args.resume, progress=not args.quiet)
    print(f"best val mF1 {summary['best']['mF1']:.4f} at epoch {summary['best']['epoch']}: {summary['best_checkpoint']}")
    return 0
