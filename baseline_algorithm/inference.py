"""From pairs to cell points: the one inference path of training validation and the container.

Steps for a batch of pairs (:func:`predict_points`):

1. resample both patches to the model's training patch size (:func:`image_tensor`) and scale the
   cell box with the tissue patch;
2. run the model (in float32, or under bfloat16 / float16 autocast: the ``precision``) and take
   the log-softmax of the cell logits;
3. find cells as local maxima of the foreground probability ``1 - p(background)`` above a threshold
   (searched on its log-odds, which has the same maxima without float32 saturation),
   at least ``min_distance_um`` apart (``skimage.feature.peak_local_max``); the class is the argmax
   over BC / TC at the peak and the confidence is that class's probability (:func:`detect_cells`);
4. map the peaks back to pixels of the input cell patch (:func:`cells_from_maps`), as (N, 4)
   arrays of ``x, y, cls, probability``.

:class:`BaselineDetector` is this path behind the detector interface
(:mod:`baseline_algorithm.detector`); :func:`baseline_detector` is its factory, the default of
``predict``. :func:`predict_points` runs a model on pairs through the same path as ``predict``
(batching, the organisers' validity rule), for training's validation and ``reproduce``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.feature import peak_local_max

from baseline_algorithm.checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint
from baseline_algorithm.detector import LoadedDetector
from baseline_algorithm.labels import tissue_target
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.predict import detect_all
from baseline_algorithm.runtime import autocast, memory_format, resolve_runtime
from baseline_algorithm.tta import averaged_log_probabilities, views
from evaluation import PointSet
from evaluation.pairs import Pair

__all__ = [
    "BaselineDetector",
    "DetectionSettings",
    "SHIPPED_CHECKPOINT",
    "baseline_detector",
    "cell_log_probabilities",
    "cells_from_maps",
    "detect_cells",
    "ground_truth_points",
    "image_tensor",
    "label_tensor",
    "load_model",
    "normalise",
    "predict_points",
    "scaled_box",
]


@dataclass(frozen=True)
class DetectionSettings:
    """How probability maps become points.

    Attributes
    ----------
    threshold : float
        Minimum foreground probability ``1 - p(background)`` of a peak.
    min_distance_um : float
        Minimum distance between two detections in micrometres; converted to model pixels with the
        checkpoint's resolution (at least 1 px).
    """

    threshold: float = 0.5
    min_distance_um: float = 2.0

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold {self.threshold} is not in (0, 1)")

    def min_distance_px(self, config: ModelConfig) -> int:
        return max(1, round(self.min_distance_um / config.cell_mpp))


def image_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size) float32 in [0, 1], resampled with antialiasing if needed.

    Resampling runs on the uint8 pixels (PyTorch's channels-last uint8 kernel), before the float
    conversion: for a 1024 px patch going to 256 px that is several times cheaper than resampling
    float32, and within one grey level of it.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if tensor.shape[-2:] != (size, size):
        tensor = F.interpolate(
            tensor[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0]
    return tensor.float().div_(255.0)


def label_tensor(labels: np.ndarray, size: int) -> torch.Tensor:
    """(H, W) integer labels -> (size, size) int64, nearest-neighbour resampled (pixel centres)."""
    tensor = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
    if tensor.shape != (size, size):
        tensor = F.interpolate(tensor[None, None].float(), size=(size, size), mode="nearest-exact")[
            0, 0
        ].long()
    return tensor


def scaled_box(pair: Pair, size: int) -> torch.Tensor:
    """The pair's cell box in pixels of the tissue patch resampled to ``size`` x ``size``, (4,)."""
    height, width = pair.tissue_image.shape[:2]
    x0, y0, x1, y1 = pair.cell_box
    return torch.tensor(
        [x0 * size / width, y0 * size / height, x1 * size / width, y1 * size / height]
    )


def normalise(images: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> normalised with the configuration's mean and std."""
    mean = torch.tensor(config.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def detect_cells(
    log_probabilities: np.ndarray, min_distance_px: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells in one cell-probability map.

    Peaks are searched on the foreground log-odds ``log((p_BC + p_TC) / p_background)``: the same
    order as the foreground probability, but without the float32 plateaus at 1.0 that a sharp
    (Dice-trained) softmax produces, which would split one cell into several equal peaks.

    Parameters
    ----------
    log_probabilities : ndarray, shape (3, H, W)
        Log-softmax over background, BC, TC.
    min_distance_px : int
        Minimum peak separation in pixels of this map.
    threshold : float
        Minimum foreground probability ``1 - p_background`` of a peak, in (0, 1).

    Returns
    -------
    xy : ndarray, shape (N, 2), int64
        Peak pixels ``(x, y)``.
    label : ndarray, shape (N,), int64
        1 (BC) or 2 (TC): argmax of the two cell-class probabilities at the peak.
    probability : ndarray, shape (N,), float64
        Probability of that class at the peak.
    """
    foreground_log_odds = (
        np.logaddexp(log_probabilities[1], log_probabilities[2]) - log_probabilities[0]
    )
    peaks = peak_local_max(
        foreground_log_odds,
        min_distance=min_distance_px,
        threshold_abs=np.log(threshold / (1 - threshold)),
        exclude_border=False,
    )
    class_probabilities = np.exp(log_probabilities[1:, peaks[:, 0], peaks[:, 1]].astype(np.float64))
    choice = class_probabilities.argmax(axis=0)
    probability = np.clip(class_probabilities[choice, np.arange(len(peaks))], 0.0, 1.0)
    return peaks[:, ::-1].astype(np.int64), choice.astype(np.int64) + 1, probability


@torch.inference_mode()
def cell_log_probabilities(
    model: CellTissueModel,
    pairs: Sequence[Pair],
    device: torch.device,
    precision: str = "float32",
    layout: torch.memory_format | None = None,
) -> np.ndarray:
    """Log-softmax of the cell logits at the model's patch size for a batch of pairs.

    ``precision`` is a resolved one (:mod:`baseline_algorithm.runtime`), that of the forward
    pass's autocast; the log-softmax itself is always float32. The images are laid out as
    ``layout``, by default :func:`~baseline_algorithm.runtime.memory_format` of the precision.

    Returns an array of shape (B, 3, S, S), float32.
    """
    config = model.config
    size = config.patch_size
    layout = layout or memory_format(precision)
    cell = normalise(
        torch.stack([image_tensor(p.cell_image, size) for p in pairs]).to(device), config
    ).contiguous(memory_format=layout)
    tissue = normalise(
        torch.stack([image_tensor(p.tissue_image, size) for p in pairs]).to(device), config
    ).contiguous(memory_format=layout)
    boxes = torch.stack([scaled_box(p, size) for p in pairs]).to(device)
    tissue_labels = None
    if model.needs_tissue_label:
        missing = [p.name for p in pairs if p.tissue_mask is None]
        if missing:
            raise ValueError(
                f"variant {config.variant!r} needs the tissue annotation, "
                f"pair {missing[0]} has none"
            )
        tissue_labels = torch.stack(
            [label_tensor(tissue_target(p.tissue_mask), size) for p in pairs]
        ).to(device)
    with autocast(device, precision):
        output = model(cell, tissue, boxes, tissue_labels)
    return output.cell_logits.float().log_softmax(dim=1).cpu().numpy()


def cells_from_maps(
    log_probabilities: np.ndarray,
    pairs: Sequence[Pair],
    config: ModelConfig,
    settings: DetectionSettings,
) -> list[np.ndarray]:
    """The cells of each pair, in pixels of its input cell patch, from the maps of
    :func:`cell_log_probabilities`.

    Parameters
    ----------
    log_probabilities : ndarray, shape (B, 3, S, S)
        One map per pair, at the model's patch size ``S``.
    pairs : sequence of Pair
        The B pairs, for the size of each input cell patch.
    config : ModelConfig
    settings : DetectionSettings

    Returns
    -------
    list of ndarray, shape (N, 4), float64
        Per pair: ``x, y`` (whole pixels within the cell patch), ``cls`` (1 or 2) and
        ``probability`` (see :func:`detect_cells`).
    """
    size = config.patch_size
    min_distance = settings.min_distance_px(config)
    cells = []
    for pair, maps in zip(pairs, log_probabilities, strict=True):
        xy, label, probability = detect_cells(maps, min_distance, settings.threshold)
        height, width = pair.cell_image.shape[:2]
        # Peak pixel centres mapped to the input patch, rounded to the nearest input pixel.
        scale = np.array([width / size, height / size])
        xy = np.clip(np.rint((xy + 0.5) * scale - 0.5), 0, [width - 1, height - 1])
        cells.append(np.column_stack([xy, label, probability]).astype(np.float64))
    return cells


def predict_points(
    model: CellTissueModel,
    pairs: Iterable[Pair],
    *,
    settings: DetectionSettings = DetectionSettings(),
    batch_size: int = 4,
    progress: bool = False,
    total: int | None = None,
    precision: str = "float32",
) -> PointSet:
    """Detect and classify the cells of every pair; the k-th pair becomes image ``k``.

    The path of ``predict``: :class:`BaselineDetector` under
    :func:`baseline_algorithm.predict.detect_all`.

    Parameters
    ----------
    model : CellTissueModel
        In eval mode, on the device to run on, laid out for ``precision``.
    pairs : iterable of Pair
        Streamed: at most ``batch_size`` pairs are held at a time. Patches of any size are resampled
        to ``model.config.patch_size``; points are returned in pixels of each input cell patch.
    settings : DetectionSettings
    batch_size : int
    progress : bool
        Show a tqdm bar on a terminal (``total`` pairs, if known).
    precision : {"float32", "bfloat16", "float16"}
        A resolved precision (:mod:`baseline_algorithm.runtime`).

    Returns
    -------
    PointSet
    """
    if model.training:
        raise ValueError("predict_points needs the model in eval mode (call model.eval())")
    detector = BaselineDetector(model, settings, batch_size, precision)
    loaded = LoadedDetector("the baseline", detector, batch_size, precision)
    return detect_all(loaded, pairs, total, progress=progress, log_pairs=False, read_ahead_pairs=0)


def ground_truth_points(pairs: Iterable[Pair]) -> tuple[PointSet, int]:
    """The cell annotations of ``pairs`` as a PointSet (pair k = image ``k``), and their count."""
    images, xys, labels = [], [], []
    count = 0
    for index, pair in enumerate(pairs):
        points = np.asarray(pair.cell_points, dtype=np.int64).reshape(-1, 3)
        images.append(np.full(len(points), index, dtype=np.int64))
        xys.append(points[:, :2])
        labels.append(points[:, 2])
        count = index + 1
    if not count or not sum(map(len, images)):
        return PointSet.empty(), count
    xy = np.concatenate(xys)
    return PointSet.from_arrays(
        np.concatenate(images), xy, np.concatenate(labels), np.ones(len(xy))
    ), count


def load_model(
    checkpoint: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CellTissueModel, DetectionSettings]:
    """The checkpoint's model (eval mode, on ``device``) and the detection settings it was
    validated with (training stores them as ``detection``; the defaults otherwise).

    Raises
    ------
    CheckpointError
        The file is not a checkpoint, its variant needs the tissue annotation (which a submission
        does not get), or its detection settings are invalid.
    """
    payload = read_checkpoint(checkpoint)
    model = model_from_checkpoint(payload).to(device)
    if model.needs_tissue_label:
        raise CheckpointError(
            f"{checkpoint}: variant {model.config.variant!r} needs the tissue "
            "annotation, which a submission does not get"
        )
    try:
        settings = DetectionSettings(**payload.get("detection", {}))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{checkpoint}: invalid detection settings {payload.get('detection')!r} ({exc})"
        ) from None
    return model, settings


class BaselineDetector:
    """Pred-to-inter-2 (or any non-leaking variant of a checkpoint) as a detector.

    ``detector(pair)`` and ``detector.detect_batch(pairs)`` return (N, 4) arrays of
    ``x, y, cls, probability`` in pixels of the input cell patch (see
    :mod:`baseline_algorithm.detector`).

    Parameters
    ----------
    model : CellTissueModel
        In eval mode, on the device to run on, laid out for ``precision``.
    settings : DetectionSettings
    batch_size : int
        Pairs per forward pass.
    precision : {"float32", "bfloat16", "float16"}
        Arithmetic of the forward pass, a resolved precision (:mod:`baseline_algorithm.runtime`).
    tta : {"none", "flips", "d4"}
        Test-time augmentation (:mod:`baseline_algorithm.tta`): the class probabilities of each
        view, averaged in the pair's frame, before cells are found once.
    """

    def __init__(
        self,
        model: CellTissueModel,
        settings: DetectionSettings,
        batch_size: int = 1,
        precision: str = "float32",
        tta: str = "none",
    ):
        if model.training:
            raise ValueError("inference needs the model in eval mode (call model.eval())")
        views(tta)  # refuses an unknown mode now, not on the first pair
        self.model = model
        self.settings = settings
        self.batch_size = batch_size
        self.precision = precision
        self.tta = tta

    def __call__(self, pair: Pair) -> np.ndarray:
        return self.detect_batch([pair])[0]

    def detect_batch(self, pairs: Sequence[Pair]) -> list[np.ndarray]:
        device = next(self.model.parameters()).device

        def log_probabilities_of(shown: Sequence[Pair]) -> np.ndarray:
            return cell_log_probabilities(self.model, shown, device, self.precision)

        maps = averaged_log_probabilities(pairs, self.tta, log_probabilities_of)
        return cells_from_maps(maps, pairs, self.model.config, self.settings)

    def describe(self) -> str:
        config = self.model.config
        return (
            f"{config.variant}, {config.encoder}, {config.patch_size} px, threshold "
            f"{self.settings.threshold}, min distance {self.settings.min_distance_um} um, "
            f"{self.precision}, tta {self.tta}"
        )


#: The weights the baseline detector uses when no checkpoint is given.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "pred_to_inter_2.pt"


def baseline_detector(
    device: str = "cpu",
    checkpoint: str | os.PathLike = SHIPPED_CHECKPOINT,
    precision: str = "auto",
    tta: str = "none",
) -> BaselineDetector:
    """The detector factory of the baseline (``baseline_algorithm.inference:baseline_detector``).

    Parameters
    ----------
    device : {"cpu", "cuda"}
        Where the model runs; batches of 4 pairs on CUDA, 1 on CPU (the peak memory of one pair).
    checkpoint : path
        The weights, with the detection settings stored in them; default the shipped checkpoint.
    precision : {"auto", "float32", "bfloat16", "float16"}
        Arithmetic of the forward pass; ``predict`` hands a resolved one, and ``auto`` (when the
        factory is called directly) resolves as :func:`baseline_algorithm.runtime.resolve_runtime`
        does on this machine.
    tta : {"none", "flips", "d4"}
        Test-time augmentation (:class:`BaselineDetector`).
    """
    chosen = resolve_runtime(device, precision).precision
    model, settings = load_model(checkpoint, torch.device(device))
    model.to(memory_format=memory_format(chosen))
    return BaselineDetector(
        model, settings, batch_size=4 if device == "cuda" else 1, precision=chosen, tta=tta
    )
