"""The paper's model family: two DeepLabV3+ branches and where the tissue context enters the cell branch.

Every variant of Ryu et al. (CVPR 2023, Sec. 4) is the same :class:`CellTissueModel` built from a
:class:`ModelConfig`; the variant only decides which context (none, the tissue branch's softmax, or
the ground-truth tissue mask) is concatenated to the cell branch, and at which point:

====================== ============== ==========================================================
variant                context        injection point in the cell branch
====================== ============== ==========================================================
cell-only              none           (no tissue branch)
pred-to-input          prediction     the RGB input (3 + K input channels)
pred-to-inter-1        prediction     the deepest encoder feature, before ASPP
pred-to-inter-2        prediction     the ASPP output, where it meets the low-level features
pred-to-output         prediction     the decoder output, before the segmentation head
tissue-label-leaking   ground truth   the RGB input (analysis only: needs the tissue annotation)
====================== ============== ==========================================================

K = 2 tissue classes (background, cancer area). The context is the region of the tissue map covered
by the cell patch, resampled onto the feature map it is concatenated to (:func:`crop_to_cell_region`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.base.initialization import initialize_decoder, initialize_head
from segmentation_models_pytorch.decoders.deeplabv3.decoder import (
    DeepLabV3PlusDecoder,
    SeparableConv2d,
)
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn
from torchvision.ops import roi_align

CELL_CLASSES = ("background", "BC", "TC")
"""Cell-branch classes; the index is the label of the cell annotation (1 = BC, 2 = TC)."""
TISSUE_CLASSES = ("background", "cancer area")
"""Tissue-branch classes; the tissue annotation stores them as 1 and 2 (see :mod:`labels`)."""
TISSUE_IGNORE_INDEX = 255
"""Tissue target value of pixels annotated as unknown; no loss is computed there."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INJECTION_POINTS = ("input", "encoder", "aspp", "decoder")


class Variant(NamedTuple):
    """Where the tissue context enters the cell branch (``None``: nowhere) and what it is."""

    injection: str | None
    context: str | None  # "prediction" (tissue branch softmax), "ground_truth" or None


VARIANTS = {
    "cell-only": Variant(None, None),
    "pred-to-input": Variant("input", "prediction"),
    "pred-to-inter-1": Variant("encoder", "prediction"),
    "pred-to-inter-2": Variant("aspp", "prediction"),
    "pred-to-output": Variant("decoder", "prediction"),
    "tissue-label-leaking": Variant("input", "ground_truth"),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it the way it was trained.

    Parameters
    ----------
    variant : str
        A key of :data:`VARIANTS`.
    encoder : str
        segmentation-models-pytorch encoder name, the same for both branches. Spatial dropout needs a
        ResNet-family encoder (``resnet18``, ``resnet34``, ...).
    dropout_tissue, dropout_cell : float
        Spatial dropout (``nn.Dropout2d``) rate at the end of each ResNet stage, per branch.
    patch_size : int
        Side in pixels of both the cell and the tissue patch the model was trained on. Inputs of
        another size are resampled to it at inference.
    cell_mpp : float
        Resolution of the cell patch at ``patch_size`` in micrometres per pixel (0.2 for OCELOT at
        1024 px); the tissue patch covers 4x the field of view.
    mean, std : tuple of float
        Per-channel normalisation of RGB values scaled to [0, 1].
    """

    variant: str = "pred-to-inter-2"
    encoder: str = "resnet34"
    dropout_tissue: float = 0.1
    dropout_cell: float = 0.3
    patch_size: int = 1024
    cell_mpp: float = 0.2
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {sorted(VARIANTS)}")
        if self.patch_size % 16:
            raise ValueError(f"patch_size {self.patch_size} px is not a multiple of 16 (the encoder stride)")
        for name in ("dropout_tissue", "dropout_cell"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} {getattr(self, name)} is not in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def crop_to_cell_region(maps: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample, per sample, the part of a tissue-patch map covered by the cell patch.

    Pixel ``i`` of ``maps`` covers the interval ``[i, i + 1)``; output pixel ``(r, c)`` is the
    average of ``maps`` over its area inside the box (``roi_align`` with ``aligned=True`` and one
    sample per input pixel when shrinking, bilinear interpolation at its centre when enlarging).
    A linear function of the tissue coordinates is therefore reproduced exactly.

    Parameters
    ----------
    maps : Tensor, shape (B, K, H, W)
        Per-pixel maps over the tissue patch (softmax probabilities or one-hot labels).
    boxes : Tensor, shape (B, 4)
        ``(x0, y0, x1, y1)`` of each sample's cell patch in pixels of ``maps`` (continuous
        coordinates, pixel edges at integers).
    size : (int, int)
        ``(height, width)`` in pixels of the feature map the crop is concatenated to.

    Returns
    -------
    Tensor, shape (B, K, height, width), float32
    """
    if boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"boxes has shape {tuple(boxes.shape)}, expected ({maps.shape[0]}, 4)")
    batch_index = torch.arange(maps.shape[0], dtype=torch.float32, device=maps.device)
    rois = torch.cat([batch_index[:, None], boxes.to(device=maps.device, dtype=torch.float32)], dim=1)
    return roi_align(maps.float(), rois, output_size=tuple(size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def add_spatial_dropout(encoder: nn.Module, rate: float) -> None:
    """Append ``nn.Dropout2d(rate)`` to each of the four ResNet stages of ``encoder`` (in place).

    Appending keeps the parameter names of the stages unchanged, so weights load across rates.
    """
    if rate == 0:
        return
    stages = [getattr(encoder, f"layer{k}", None) for k in range(1, 5)]
    if not all(isinstance(stage, nn.Sequential) for stage in stages):
        raise ValueError(f"spatial dropout needs a ResNet-family encoder (layer1..layer4), got {type(encoder).__name__}")
    for stage in stages:
        stage.append(nn.Dropout2d(rate))


class DeepLabV3PlusBranch(nn.Module):
    """DeepLabV3+ (output stride 16) with optional extra channels concatenated at one point.

    Encoder, decoder modules and head are those of segmentation-models-pytorch; only the layer that
    receives the context has ``context_channels`` more input channels.

    Parameters
    ----------
    encoder : str
        segmentation-models-pytorch encoder name; randomly initialised (nothing is downloaded).
    classes : int
        Output channels (logits).
    dropout : float
        Spatial dropout rate at the end of each encoder stage.
    context_channels : int
        Number of context channels (0 for none).
    inject_at : {None, "input", "encoder", "aspp", "decoder"}
        Where the context is concatenated.
    decoder_channels : int
        Width of the ASPP and decoder features.
    """

    highres_channels = 48  # the 1x1-reduced low-level feature of DeepLabV3+ (smp's choice)

    def __init__(
        self,
        encoder: str,
        classes: int,
        dropout: float = 0.0,
        context_channels: int = 0,
        inject_at: str | None = None,
        decoder_channels: int = 256,
    ):
        super().__init__()
        if inject_at not in (None, *INJECTION_POINTS):
            raise ValueError(f"inject_at {inject_at!r} is not one of {INJECTION_POINTS} or None")
        if (inject_at is None) != (context_channels == 0):
            raise ValueError("context_channels must be > 0 exactly when inject_at is given")
        self.inject_at = inject_at
        extra = {point: context_channels if inject_at == point else 0 for point in INJECTION_POINTS}

        self.encoder = get_encoder(encoder, in_channels=3 + extra["input"], depth=5, weights=None, output_stride=16)
        add_spatial_dropout(self.encoder, dropout)
        encoder_channels = list(self.encoder.out_channels)
        encoder_channels[-1] += extra["encoder"]
        self.decoder = DeepLabV3PlusDecoder(
            encoder_channels=encoder_channels,
            encoder_depth=5,
            out_channels=decoder_channels,
            atrous_rates=(12, 24, 36),
            output_stride=16,
            aspp_separable=True,
            aspp_dropout=0.5,
        )
        if extra["aspp"]:
            # The fusion convolution that reads [ASPP output, low-level feature] reads the context too.
            self.decoder.block2 = nn.Sequential(
                SeparableConv2d(
                    self.highres_channels + decoder_channels + extra["aspp"],
                    decoder_channels,
                    kernel_size=3,
                    padding=1,
                    bias=False,
                ),
                nn.BatchNorm2d(decoder_channels),
                nn.ReLU(),
            )
        self.head = SegmentationHead(decoder_channels + extra["decoder"], classes, kernel_size=1, upsampling=4)
        initialize_decoder(self.decoder)
        initialize_head(self.head)

    def forward(
        self, image: torch.Tensor, context: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of shape (B, classes, H, W) for ``image`` of shape (B, 3, H, W).

        ``context`` (B, K, Ht, Wt) and ``boxes`` (B, 4) are required when the branch injects: the
        part of ``context`` inside each box is resampled onto the feature map at ``inject_at``.
        """

        def attach(features: torch.Tensor, point: str) -> torch.Tensor:
            if self.inject_at != point:
                return features
            crop = crop_to_cell_region(context, boxes, features.shape[-2:])
            return torch.cat([features, crop.to(features.dtype)], dim=1)

        if self.inject_at is not None and (context is None or boxes is None):
            raise ValueError(f"this branch injects context at {self.inject_at!r}: context and boxes are required")
        features = self.encoder(attach(image, "input"))
        deepest = attach(features[-1], "encoder")
        aspp = attach(self.decoder.up(self.decoder.aspp(deepest)), "aspp")
        fused = self.decoder.block2(torch.cat([aspp, self.decoder.block1(features[2])], dim=1))
        return self.head(attach(fused, "decoder"))


class ModelOutput(NamedTuple):
    cell_logits: torch.Tensor  # (B, 3, H, W)
    tissue_logits: torch.Tensor | None  # (B, 2, Ht, Wt); None for variants without a tissue branch


def tissue_one_hot(tissue_label: torch.Tensor) -> torch.Tensor:
    """(B, H, W) tissue targets (0, 1, or 255 = unknown) -> (B, 2, H, W) float one-hot, unknown all zero."""
    known = tissue_label != TISSUE_IGNORE_INDEX
    one_hot = F.one_hot(torch.where(known, tissue_label, 0).long(), len(TISSUE_CLASSES))
    return (one_hot * known[..., None]).permute(0, 3, 1, 2).float()


class CellTissueModel(nn.Module):
    """Cell branch, plus a tissue branch when the variant uses the tissue prediction.

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.variant = VARIANTS[config.variant]
        context_channels = len(TISSUE_CLASSES) if self.variant.context else 0
        self.tissue_branch = (
            DeepLabV3PlusBranch(config.encoder, len(TISSUE_CLASSES), config.dropout_tissue)
            if self.variant.context == "prediction"
            else None
        )
        self.cell_branch = DeepLabV3PlusBranch(
            config.encoder, len(CELL_CLASSES), config.dropout_cell, context_channels, self.variant.injection
        )

    @property
    def needs_tissue_label(self) -> bool:
        """True for the leaking variant, which reads the tissue annotation at inference too."""
        return self.variant.context == "ground_truth"

    def forward(
        self,
        cell_image: torch.Tensor,
        tissue_image: torch.Tensor | None = None,
        cell_box: torch.Tensor | None = None,
        tissue_label: torch.Tensor | None = None,
    ) -> ModelOutput:
        """Run both branches.

        Parameters
        ----------
        cell_image : Tensor, shape (B, 3, H, W)
            Normalised cell patch.
        tissue_image : Tensor, shape (B, 3, Ht, Wt)
            Normalised tissue patch (variants with a tissue branch).
        cell_box : Tensor, shape (B, 4)
            ``(x0, y0, x1, y1)`` of the cell patch in tissue-patch pixels (variants with context).
        tissue_label : Tensor, shape (B, Ht, Wt)
            Tissue targets, 0 / 1 / 255 (the leaking variant only).
        """
        tissue_logits = None
        context = None
        if self.variant.context == "prediction":
            if tissue_image is None:
                raise ValueError(f"variant {self.config.variant!r} needs the tissue image")
            tissue_logits = self.tissue_branch(tissue_image)
            context = tissue_logits.float().softmax(dim=1)
        elif self.variant.context == "ground_truth":
            if tissue_label is None:
                raise ValueError(f"variant {self.config.variant!r} needs the tissue annotation")
            context = tissue_one_hot(tissue_label)
        return ModelOutput(self.cell_branch(cell_image, context, cell_box), tissue_logits)
