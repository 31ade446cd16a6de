"""Training: fit a variant on a dataset in the release layout, as in the paper (Sec. 4 and 5).

One epoch = one pass over the train split with the five augmentations; after each epoch the val
split is scored with :func:`evaluation.score` (mF1 at 3 um) through the same inference path as the
container. ``OUT/best.pt`` is the epoch with the best val mF1, ``OUT/last.pt`` the state to resume
from, ``OUT/history.json`` the per-epoch losses, scores and throughput, ``OUT/summary.json`` the
run, with why it stopped (``stopped``: it trained ``--epochs``, or early stopping's ``--patience``
or ``--max-minutes`` ended it). ``--lr-schedule cosine`` decays the learning rates over
``--epochs``; the schedule and the patience count are functions of the epoch and the best epoch,
which ``last.pt`` stores, so a resumed run continues both.

Every epoch is seeded from ``(seed, epoch)`` (shuffling, dropout) and every pair's augmentation
from ``(seed, epoch, pair)``, so a resumed run continues as the uninterrupted one would, and a
global batch holds the same pairs, augmented the same way, whatever the number of processes.

Data-parallel training: started by ``torchrun`` (which sets ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``), :func:`fit` joins the process group (NCCL on CUDA, gloo on the CPU), gives each
process a disjoint shard of every global batch, all-reduces gradients (DDP, with synchronised
batch norm on CUDA) and validates, logs and writes checkpoints on rank 0 only.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from baseline_algorithm.augment import PhotometricRanges, Sample, augment
from baseline_algorithm.checkpoint import (
    WEIGHT_DTYPES,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from baseline_algorithm.commands.options import option
from baseline_algorithm.inference import (
    DetectionSettings,
    ground_truth_points,
    image_tensor,
    label_tensor,
    normalise,
    predict_points,
    scaled_box,
)
from baseline_algorithm.labels import (
    cell_label_map,
    crop_labels_to_box,
    disk_radius_px,
    tissue_target,
)
from baseline_algorithm.losses import CellTissueDiceLoss
from baseline_algorithm.model import (
    SHARING_DIRECTIONS,
    SHARING_POSITIONS,
    TISSUE_IGNORE_INDEX,
    VARIANTS,
    CellTissueModel,
    ModelConfig,
    ModelConfigError,
    has_tissue_branch,
)
from baseline_algorithm.parallel import (
    ProcessGroup,
    ShardedBatchSampler,
    global_sum,
    join_process_group,
    synchronise_batch_norm,
)
from baseline_algorithm.runtime import PRECISIONS, Runtime, autocast, memory_format, resolve_runtime
from evaluation import PointSet, ScoreReport, score, write_json_atomic
from evaluation.constants import CELL_MPP, MATCH_RADIUS_UM, PATCH_SIZE_PX
from evaluation.errors import DataError, OcelotError
from evaluation.pairs import Pair
from evaluation.release import ReleaseDataset

__all__ = [
    "ABLATIONS",
    "RESUME_OVERRIDES",
    "TrainingError",
    "TrainingOptions",
    "TrainingPairs",
    "data_resolution",
    "fit",
    "model_config",
    "pair_sample",
    "prepare_for_training",
    "ScoredPairs",
    "score_pairs",
    "scoring_radius_px",
    "tissue_targets_for",
    "train_one_epoch",
    "training_step",
]

RESUME_OVERRIDES = ("data", "out", "epochs", "workers", "device", "max_minutes")
"""Options a resumed run takes from the new call; the others come from ``last.pt``."""

LR_SCHEDULES = ("constant", "cosine")
"""``constant``: the learning rates as given; ``cosine``: each decays from its value to 0 along
half a cosine over ``--epochs``, once (no warm restarts)."""
STOP_REASONS = ("epochs", "patience", "max_minutes")
"""Why a run stopped, as ``summary.json`` records it: it trained ``--epochs`` epochs, val mF1
did not improve for ``--patience`` epochs, or ``--max-minutes`` was spent."""

ABLATIONS = {
    # name: (what the tissue branch reads, weight of the tissue loss)
    "both": ("tissue-patch", 1.0),
    "tissue-label-only": ("cell-patch", 1.0),
    "large-fov-only": ("tissue-patch", 0.0),
}
"""The paper's Table 7: which of the tissue label and the large field of view training uses.

``both``: the tissue branch reads the tissue patch and learns the tissue label (the paper's model).
``tissue-label-only``: it reads the cell patch and learns the tissue label cropped to it.
``large-fov-only``: it reads the tissue patch and learns only through the cell loss.
"""


class TrainingError(OcelotError, ValueError):
    """Training cannot start (bad options, too little data); ``str()`` is one line."""


@dataclass(frozen=True)
class TrainingOptions:
    """Options of one training run; stored in every checkpoint and in ``summary.json``.

    Each field is also the command-line option ``--field-name`` of ``train`` (and, for the
    training fields, of ``reproduce``); the metadata holds its help text.
    """

    data: str = field(
        metadata={"help": "dataset root (release layout: metadata.json, images/, annotations/)"}
    )
    out: str = field(
        metadata={"help": "run directory (best.pt, last.pt, history.json, summary.json)"}
    )
    variant: str = option("pred-to-inter-2", "model variant", choices=tuple(VARIANTS))
    sharing: tuple[str, str, str] | None = option(
        None,
        "feature-sharing only: exchange after the encoder, ASPP and decoder, each one of "
        f"{', '.join(SHARING_DIRECTIONS)} (default: both, both, both)",
        choices=SHARING_DIRECTIONS,
        metavar=tuple(position.upper() for position in SHARING_POSITIONS),
    )
    ablation: str = option(
        "both",
        "Table 7: what the tissue branch learns from (both; tissue-label-only: it reads the cell "
        "patch; large-fov-only: no tissue loss)",
        choices=tuple(ABLATIONS),
    )
    encoder: str = option("resnet34", "segmentation-models-pytorch encoder (random init)")
    epochs: int = option(300, "epochs to train")
    batch_size: int = option(8, "global batch: pairs per optimiser step, over all processes")
    lr_tissue: float = option(1e-3, "Adam learning rate, tissue branch")
    lr_cell: float = option(5e-4, "Adam learning rate, cell branch")
    dropout_tissue: float = option(0.1, "spatial dropout rate, tissue branch")
    dropout_cell: float = option(0.3, "spatial dropout rate, cell branch")
    dropout_aspp: float = option(0.5, "dropout rate after ASPP, both branches")
    size: int | None = option(None, "training patch side in px (default: the data's)")
    seed: int = option(0, "seed of initialisation, shuffling, augmentation and dropout")
    workers: int = option(2, "DataLoader worker processes (per training process)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N (auto: cuda when available)")
    precision: str = option(
        "auto",
        "arithmetic of the training steps: float32, or bfloat16/float16 autocast (float16 with "
        "gradient scaling); auto: bfloat16 on CUDA (float16 on a GPU without bfloat16) and on "
        "CPUs with native bfloat16, else float32",
        choices=PRECISIONS,
    )
    threshold: float = option(DetectionSettings.threshold, "minimum foreground probability")
    min_distance_um: float = option(DetectionSettings.min_distance_um, "peak separation, um")
    checkpoint_dtype: str = option(
        "float32",
        "storage of best.pt's weights (int8/float16 to ship a small file)",
        choices=WEIGHT_DTYPES,
    )
    max_minutes: float | None = option(
        None, "stop after the first epoch that ends later than this (wall clock, minutes)"
    )
    patience: int | None = option(
        None,
        "early stopping: stop once val mF1 has not improved for this many epochs (default: "
        "train every epoch)",
    )
    lr_schedule: str = option(
        "constant",
        "learning-rate schedule over the epochs: constant, or cosine (each rate decays to 0 "
        "along half a cosine over --epochs, no warm restarts)",
        choices=LR_SCHEDULES,
    )

    def detection(self) -> DetectionSettings:
        return DetectionSettings(self.threshold, self.min_distance_um)


def pair_sample(pair: Pair, size: int) -> Sample:
    """Tensors of one pair at ``size`` x ``size`` px: images, disk labels, tissue targets, box."""
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
    """Pairs of a split as augmented :class:`Sample` dictionaries.

    The augmentation of pair ``index`` is drawn from its own generator, seeded from ``seed``,
    the epoch (:meth:`set_epoch`) and ``index``: the same in any process and any worker.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        size: int,
        ranges: PhotometricRanges | None = PhotometricRanges(),  # noqa: B008 (frozen, immutable)
        seed: int = 0,
    ):
        self.pairs = pairs
        self.size = size
        self.ranges = ranges
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = pair_sample(self.pairs[index], self.size)
        if self.ranges is not None:
            generator = torch.Generator().manual_seed(
                (self.seed * 100_003 + self.epoch) * 1_000_003 + index
            )
            sample = augment(sample, self.ranges, generator)
        return {item.name: getattr(sample, item.name) for item in fields(Sample)}


def data_resolution(pair: Pair) -> tuple[int, float]:
    """Cell patch side (px) and pixel size (um, from the metadata's ``cell.resized_mpp_x``)."""
    try:
        mpp = float(pair.meta["cell"]["resized_mpp_x"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"pair {pair.name}: metadata has no cell.resized_mpp_x") from None
    return pair.cell_image.shape[1], mpp


def scoring_radius_px(data_size: int) -> float:
    """3 um in pixels of a cell patch of ``data_size`` px (15 px at 1024, the leaderboard's)."""
    return MATCH_RADIUS_UM / (CELL_MPP * PATCH_SIZE_PX / data_size)


class ScoredPairs(NamedTuple):
    """What :func:`score_pairs` found and how it scored."""

    report: ScoreReport
    predictions: PointSet
    truth: PointSet
    num_images: int


def score_pairs(
    model: CellTissueModel,
    pairs: Sequence[Pair],
    radius_px: float,
    settings: DetectionSettings,
    batch_size: int,
    progress: bool = True,
    precision: str = "float32",
) -> ScoredPairs:
    """Detect the cells of ``pairs`` with ``model`` and score them against their annotations.

    ``precision`` is a resolved one, that of :func:`~baseline_algorithm.inference.predict_points`.
    """
    predictions = predict_points(
        model,
        pairs,
        settings=settings,
        batch_size=batch_size,
        progress=progress,
        total=len(pairs),
        precision=precision,
    )
    truth, count = ground_truth_points(pairs)
    report = score(predictions, truth, count, radius_px=radius_px)
    return ScoredPairs(report, predictions, truth, count)


def _optimizer(model: CellTissueModel, options: TrainingOptions) -> torch.optim.Adam:
    """Adam with the cell learning rate for the cell branch, the tissue one for the rest."""
    cell = list(model.cell_branch.parameters())
    cell_ids = {id(parameter) for parameter in cell}
    groups = [{"params": cell, "lr": options.lr_cell}]
    others = [parameter for parameter in model.parameters() if id(parameter) not in cell_ids]
    if others:  # the tissue branch and Feature-sharing's exchange convolutions
        groups.append({"params": others, "lr": options.lr_tissue})
    return torch.optim.Adam(groups)


def tissue_targets_for(batch: dict[str, torch.Tensor], config: ModelConfig) -> torch.Tensor:
    """The tissue branch's targets: the tissue label, or its cell region when it reads the cell
    patch (Table 7's tissue-label-only)."""
    if config.tissue_input == "cell-patch":
        return crop_labels_to_box(
            batch["tissue_target"], batch["cell_box"], tuple(batch["cell_image"].shape[-2:])
        )
    return batch["tissue_target"]


def prepare_for_training(
    model: CellTissueModel, device: torch.device, precision: str
) -> torch.amp.GradScaler:
    """Move ``model`` to ``device`` in the memory layout of ``precision`` (channels-last under
    autocast) and return the gradient scaler of :func:`training_step`, enabled for float16."""
    model.to(device, memory_format=memory_format(precision))
    return torch.amp.GradScaler(device.type, enabled=precision == "float16")


def training_step(
    model: CellTissueModel | DistributedDataParallel,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: CellTissueDiceLoss,
    precision: str = "float32",
) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch``; returns its losses.

    Parameters
    ----------
    model : CellTissueModel or DistributedDataParallel
        In training mode, laid out as :func:`~baseline_algorithm.inference.memory_format` of
        ``precision``.
    batch : dict of Tensor
        :class:`~baseline_algorithm.augment.Sample` fields with a leading batch axis, on the
        model's device; images in 0..1.
    scaler : torch.amp.GradScaler
        Enabled for float16, whose small gradients underflow without scaling.
    precision : {"float32", "bfloat16", "float16"}
        Autocast of the forward pass (:func:`~baseline_algorithm.inference.autocast`); the Dice
        loss is float32 either way.
    """
    config = (model.module if isinstance(model, DistributedDataParallel) else model).config
    device = batch["cell_image"].device
    layout = memory_format(precision)
    with autocast(device, precision):
        output = model(
            normalise(batch["cell_image"], config).contiguous(memory_format=layout),
            normalise(batch["tissue_image"], config).contiguous(memory_format=layout),
            batch["cell_box"],
            batch["tissue_target"],
        )
    losses = loss_fn(output, batch["cell_target"], tissue_targets_for(batch, config))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses["loss"]).backward()
    scaler.step(optimizer)
    scaler.update()
    return losses


def train_one_epoch(
    model: CellTissueModel | DistributedDataParallel,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: CellTissueDiceLoss,
    device: torch.device,
    description: str,
    progress: bool = True,
    world_size: int = 1,
    precision: str = "float32",
) -> dict[str, float]:
    """One pass over ``loader``; mean losses and throughput (pairs per second, all processes).

    With ``world_size`` > 1 the losses are averaged over the processes. ``precision`` is that of
    :func:`training_step`.
    """
    model.train()
    totals: dict[str, float] = {}
    pairs = 0
    start = time.perf_counter()
    with tqdm(loader, desc=description, unit="batch", disable=not progress, leave=False) as bar:
        for batch in bar:
            batch = {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
            losses = training_step(model, batch, optimizer, scaler, loss_fn, precision)
            size = len(batch["cell_image"])
            pairs += size
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value.item() * size
            bar.set_postfix(loss=f"{losses['loss'].item():.4f}")
    seconds = time.perf_counter() - start
    names = sorted(totals)
    # On the training device: NCCL reduces CUDA tensors only.
    sums = torch.tensor(
        [totals[name] for name in names] + [pairs], dtype=torch.float64, device=device
    )
    if world_size > 1:
        dist.all_reduce(sums)
    totals, pairs = dict(zip(names, sums[:-1].tolist(), strict=True)), sums[-1].item()
    means = {name if name == "loss" else f"{name}_loss": totals[name] / pairs for name in names}
    return {**means, "train_seconds": seconds, "train_pairs_per_second": pairs / seconds}


def model_config(options: TrainingOptions, data_size: int, data_mpp: float) -> ModelConfig:
    """The model configuration ``options`` ask for, on data of ``data_size`` px at ``data_mpp``."""
    if options.ablation not in ABLATIONS:
        raise TrainingError(
            f"ablation {options.ablation!r}: expected one of {', '.join(ABLATIONS)}"
        )
    if options.ablation != "both" and not has_tissue_branch(options.variant):
        raise TrainingError(
            f"ablation {options.ablation!r}: variant {options.variant!r} has no tissue branch"
        )
    size = options.size or data_size
    try:
        return ModelConfig(
            variant=options.variant,
            encoder=options.encoder,
            dropout_tissue=options.dropout_tissue,
            dropout_cell=options.dropout_cell,
            dropout_aspp=options.dropout_aspp,
            patch_size=size,
            cell_mpp=data_mpp * data_size / size,
            sharing=options.sharing,
            tissue_input=ABLATIONS[options.ablation][0],
        )
    except ModelConfigError as error:
        raise TrainingError(str(error)) from None


def _check_options(options: TrainingOptions, world_size: int) -> None:
    if options.variant not in VARIANTS:
        raise TrainingError(f"variant {options.variant!r}: expected one of {', '.join(VARIANTS)}")
    if options.checkpoint_dtype not in WEIGHT_DTYPES:
        raise TrainingError(
            f"checkpoint_dtype {options.checkpoint_dtype!r}: expected one of {WEIGHT_DTYPES}"
        )
    if options.batch_size % world_size:
        raise TrainingError(
            f"batch_size {options.batch_size}: not a multiple of the {world_size} processes"
        )
    if options.patience is not None and options.patience < 1:
        raise TrainingError(f"patience {options.patience}: expected at least 1 epoch")
    if options.lr_schedule not in LR_SCHEDULES:
        raise TrainingError(
            f"lr_schedule {options.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}"
        )
    if options.batch_size // world_size < 2:
        raise TrainingError(
            f"batch_size {options.batch_size}: batch norm needs at least 2 pairs per batch and "
            f"process ({world_size} processes)"
        )


def _stop_reason(
    options: TrainingOptions,
    started: float,
    history: Sequence[dict],
    best: dict,
    group: ProcessGroup,
    device: torch.device,
) -> str | None:
    """Why training stops before the next epoch (``max_minutes`` or ``patience``), or None.

    Rank 0 decides (it alone keeps the history) and every rank stops together. The patience
    state is the number of epochs since the best one, so a resumed run (whose ``last.pt`` holds
    the history and the best epoch) counts on from where it stopped.
    """
    reason = None
    if options.max_minutes is not None and time.perf_counter() - started > 60 * (
        options.max_minutes
    ):
        reason = "max_minutes"
    elif (
        options.patience is not None
        and best["epoch"] is not None
        and len(history) - best["epoch"] >= options.patience
    ):
        reason = "patience"
    if group.world_size > 1:
        code = torch.tensor([STOP_REASONS.index(reason) if reason else -1], device=device)
        dist.broadcast(code, src=0)
        reason = STOP_REASONS[code.item()] if code.item() >= 0 else None
    return reason


def learning_rate_factor(options: TrainingOptions, epoch: int) -> float:
    """Factor of the learning rates in ``epoch`` (0-based) under ``options.lr_schedule``.

    A closed form of the epoch rather than a stepped scheduler: a run resumed from ``last.pt``
    (which stores the epoch) continues the schedule exactly, and one resumed with a new
    ``--epochs`` follows the cosine of the new length.
    """
    if options.lr_schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(epoch, options.epochs) / options.epochs))


def _set_learning_rates(
    optimizer: torch.optim.Optimizer, options: TrainingOptions, epoch: int
) -> None:
    """The rates of :func:`_optimizer`'s groups (cell, then the rest) scaled for ``epoch``."""
    factor = learning_rate_factor(options, epoch)
    for group, rate in zip(optimizer.param_groups, (options.lr_cell, options.lr_tissue)):
        group["lr"] = rate * factor


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (DataLoader workers), seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def fit(options: TrainingOptions, *, resume: bool = False, progress: bool = True) -> dict:
    """Train as configured by ``options``; returns the run summary (also ``OUT/summary.json``).

    With ``resume``, training continues from ``OUT/last.pt`` with its stored options except
    ``data``, ``out``, ``epochs``, ``workers``, ``device`` and ``max_minutes``, which are taken
    from ``options``; ``auto`` device and precision resolve again on this machine. Under
    ``torchrun`` every process calls this; rank 0 writes the files and every rank returns the
    summary, with its ``rank``.
    """
    state = None
    if resume:
        state = read_checkpoint(Path(options.out) / "last.pt")
        current = {name: getattr(options, name) for name in RESUME_OVERRIDES}
        stored = dict(state["options"])
        if stored.get("sharing") is not None:
            stored["sharing"] = tuple(stored["sharing"])
        options = TrainingOptions(**{**stored, **current})
    # Runs recorded before device defaulted to auto stored None.
    runtime = resolve_runtime(options.device or "auto", options.precision)
    group, device_name = join_process_group(runtime.device)
    try:
        return _fit(
            options,
            state,
            progress and group.is_main,
            group,
            Runtime(device_name, runtime.precision, runtime.reason),
        )
    finally:
        if group.owned:
            dist.destroy_process_group()


def _fit(
    options: TrainingOptions,
    state: dict | None,
    progress: bool,
    group: ProcessGroup,
    runtime: Runtime,
) -> dict:
    out = Path(options.out)
    device = torch.device(runtime.device)
    _check_options(options, group.world_size)
    train_pairs = ReleaseDataset(options.data, "train")
    val_pairs = ReleaseDataset(options.data, "val")
    if len(train_pairs) < options.batch_size or not len(val_pairs):
        raise TrainingError(
            f"{options.data}: {len(train_pairs)} train / {len(val_pairs)} val pairs; need at "
            f"least batch_size ({options.batch_size}) train pairs and one val pair"
        )
    data_size, data_mpp = data_resolution(train_pairs[0])
    config = model_config(options, data_size, data_mpp)

    torch.manual_seed(options.seed)  # the same initial weights on every rank
    model = CellTissueModel(config) if state is None else model_from_checkpoint(state)
    if group.world_size > 1:
        model = synchronise_batch_norm(model, device)
    precision = runtime.precision
    if group.is_main:
        tqdm.write(f"train: {runtime}, {group.world_size} process(es)")
    scaler = prepare_for_training(model, device, precision)
    optimizer = _optimizer(model, options)
    history, best, start_epoch = [], {"mF1": -1.0, "epoch": None}, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:  # empty when the run trained without float16 (scaler disabled)
            scaler.load_state_dict(state["scaler"])
        history, best, start_epoch = state["history"], state["best"], state["epoch"]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    trained = model
    if group.world_size > 1:
        trained = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    dataset = TrainingPairs(train_pairs, config.patch_size, seed=options.seed)
    sampler = ShardedBatchSampler(
        len(dataset), options.batch_size, group.rank, group.world_size, options.seed
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=options.workers,
        pin_memory=device.type == "cuda",
    )
    loss_fn = CellTissueDiceLoss(ABLATIONS[options.ablation][1], reduce=global_sum)
    radius_px = scoring_radius_px(data_size)
    settings = options.detection()
    summary = {
        "options": asdict(options),
        "config": config.to_dict(),
        "device": str(device),
        "precision": precision,
        "world_size": group.world_size,
        "radius_px": radius_px,
    }
    started = time.perf_counter()
    stopped = "epochs"
    for epoch in range(start_epoch, options.epochs):
        reason = _stop_reason(options, started, history, best, group, device)
        if reason is not None:
            stopped = reason
            if group.is_main:
                limit = options.max_minutes if reason == "max_minutes" else options.patience
                tqdm.write(f"stopping before epoch {epoch + 1}: {reason} {limit} reached")
            break
        # Dropout differs between ranks as it would between the pairs of one batch.
        torch.manual_seed((options.seed * 100_003 + epoch) * 1_009 + group.rank)
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        if options.lr_schedule != "constant":
            _set_learning_rates(optimizer, options, epoch)
        record = {
            "epoch": epoch + 1,
            "world_size": group.world_size,
            "lr_cell": optimizer.param_groups[0]["lr"],
        }
        cpu_started = cpu_seconds()
        record |= train_one_epoch(
            trained,
            loader,
            optimizer,
            scaler,
            loss_fn,
            device,
            f"epoch {epoch + 1}/{options.epochs}",
            progress,
            group.world_size,
            precision,
        )
        if group.is_main:
            best = _validate_and_save(
                model,
                optimizer,
                scaler,
                options,
                settings,
                val_pairs,
                radius_px,
                record,
                history,
                best,
                progress,
                precision,
                cpu_started,
            )
        if group.world_size > 1:
            dist.barrier()  # the next epoch starts once rank 0 has written its checkpoint
    if not group.is_main and (out / "last.pt").exists():
        stored = read_checkpoint(out / "last.pt")  # rank 0 kept the history and the best epoch
        history, best = stored["history"], stored["best"]
    summary |= {
        "best": best,
        "epochs": len(history),
        "stopped": stopped,
        "best_checkpoint": str(out / "best.pt"),
    }
    if group.is_main:
        write_json_atomic(out / "summary.json", summary)
    return summary | {"rank": group.rank}


def _validate_and_save(
    model: CellTissueModel,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    options: TrainingOptions,
    settings: DetectionSettings,
    val_pairs: Sequence[Pair],
    radius_px: float,
    record: dict,
    history: list,
    best: dict,
    progress: bool,
    precision: str,
    cpu_started: float,
) -> dict:
    """Rank 0's end of an epoch: score val (at the training's ``precision``), write best.pt,
    last.pt and history.json. ``record["cpu_seconds"]`` is rank 0's CPU time of the epoch since
    ``cpu_started`` (:func:`cpu_seconds`), validation included."""
    out = Path(options.out)
    epoch = record["epoch"]
    start = time.perf_counter()
    model.eval()
    record |= score_pairs(
        model, val_pairs, radius_px, settings, options.batch_size, progress, precision
    ).report.aggregates
    record["val_seconds"] = time.perf_counter() - start
    record["cpu_seconds"] = cpu_seconds() - cpu_started
    history.append(record)
    if record["mF1"] > best["mF1"]:
        best = {"mF1": record["mF1"], "epoch": epoch}
        save_checkpoint(
            out / "best.pt",
            model,
            weights_dtype=options.checkpoint_dtype,
            epoch=epoch,
            val=record,
            options=asdict(options),
            detection=asdict(settings),
        )
    save_checkpoint(
        out / "last.pt",
        model,
        epoch=epoch,
        options=asdict(options),
        optimizer=optimizer.state_dict(),
        scaler=scaler.state_dict(),
        history=history,
        best=best,
    )
    write_json_atomic(out / "history.json", history)
    tqdm.write(
        f"epoch {epoch}: loss {record['loss']:.4f}  val mF1 {record['mF1']:.4f} "
        f"(BC {record['F1/BC']:.4f}, TC {record['F1/TC']:.4f})  best {best['mF1']:.4f} @ "
        f"{best['epoch']}  train {record['train_pairs_per_second']:.2f} pairs/s on "
        f"{record['world_size']} process(es), val {record['val_seconds']:.1f} s"
    )
    return best
