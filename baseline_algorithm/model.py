"""The paper's model family: two DeepLabV3+ branches, and how tissue context reaches the cell one.

Every variant of Ryu et al. (CVPR 2023, Sec. 4 and 5.3) is the same :class:`CellTissueModel` built
from a :class:`ModelConfig`; the variant only decides which context (none, the tissue branch's
softmax, the ground-truth tissue mask, or the tissue branch's features) the cell branch receives,
and where:

====================== ============== ==========================================================
variant                context        where the cell branch receives it
====================== ============== ==========================================================
cell-only              none           (no tissue branch)
pred-to-input          prediction     the RGB input (3 + K input channels)
pred-to-inter-1        prediction     the deepest encoder feature, before ASPP
pred-to-inter-2        prediction     the ASPP output, where it meets the low-level features
pred-to-output         prediction     the decoder output, before the segmentation head
feature-sharing        features       after the encoder, ASPP and/or decoder, in either direction
tissue-label-leaking   ground truth   the RGB input (analysis only: needs the tissue annotation)
====================== ============== ==========================================================

K = 2 tissue classes (background, cancer area). The context is the region of the tissue map covered
by the cell patch, resampled onto the feature map it is concatenated to
(:func:`crop_to_cell_region`); Feature-sharing also passes cell features the other way, resampled
into the cell region of the tissue map and zero elsewhere (:func:`place_in_cell_region`).

Each branch is segmentation-models-pytorch's encoder, DeepLabV3+ decoder and head, run stage by
stage (:class:`DeepLabV3PlusBranch`); a variant only widens the layer that reads a concatenation.
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

from evaluation.constants import CELL_MPP, PATCH_SIZE_PX
from evaluation.errors import OcelotError

__all__ = [
    "CELL_CLASSES",
    "CellTissueModel",
    "DEFAULT_SHARING",
    "DeepLabV3PlusBranch",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INJECTION_POINTS",
    "ModelConfig",
    "ModelConfigError",
    "ModelOutput",
    "SHARING_DIRECTIONS",
    "SHARING_POSITIONS",
    "TISSUE_CLASSES",
    "TISSUE_IGNORE_INDEX",
    "TISSUE_INPUTS",
    "VARIANTS",
    "Variant",
    "add_spatial_dropout",
    "crop_to_cell_region",
    "exchange_convolution",
    "has_tissue_branch",
    "place_in_cell_region",
    "tissue_one_hot",
    "whole_patch_boxes",
]

CELL_CLASSES = ("background", "BC", "TC")
"""Cell-branch classes; the index is the label of the cell annotation (1 = BC, 2 = TC)."""
TISSUE_CLASSES = ("background", "cancer area")
"""Tissue-branch classes; the tissue annotation stores them as 1 and 2 (see :mod:`labels`)."""
TISSUE_IGNORE_INDEX = 255
"""Tissue target value of pixels annotated as unknown; no loss is computed there."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INJECTION_POINTS = ("input", "encoder", "aspp", "decoder")
"""Where a branch reads extra channels: its input, before ASPP, before fusion, before the head."""
SHARING_POSITIONS = ("encoder", "aspp", "decoder")
"""Where Feature-sharing may exchange: after the encoder, after ASPP, after the decoder (§5.3)."""
SHARING_DIRECTIONS = ("none", "cell-to-tissue", "tissue-to-cell", "both")
DEFAULT_SHARING = ("both", "both", "both")
"""Feature-sharing's default: both directions at all three positions (see ``docs/model.md``)."""
TISSUE_INPUTS = ("tissue-patch", "cell-patch")
"""What the tissue branch reads: the large field of view, or the cell patch (Table 7 ablation)."""


class ModelConfigError(OcelotError, ValueError):
    """A model configuration names an unknown variant or an impossible setting."""


class Variant(NamedTuple):
    """How the tissue context reaches the cell branch.

    ``injection``: where a single context is concatenated (``None``: nowhere); ``context``:
    ``"prediction"`` (tissue branch softmax), ``"ground_truth"`` or ``None``; ``shares_features``:
    the branches exchange features (Feature-sharing).
    """

    injection: str | None
    context: str | None
    shares_features: bool = False


VARIANTS = {
    "cell-only": Variant(None, None),
    "pred-to-input": Variant("input", "prediction"),
    "pred-to-inter-1": Variant("encoder", "prediction"),
    "pred-to-inter-2": Variant("aspp", "prediction"),
    "pred-to-output": Variant("decoder", "prediction"),
    "feature-sharing": Variant(None, None, shares_features=True),
    "tissue-label-leaking": Variant("input", "ground_truth"),
}
"""The seven models of the paper's Table 5, in its order."""


def has_tissue_branch(variant: str) -> bool:
    """Whether ``variant`` runs (and trains) a tissue branch."""
    spec = VARIANTS[variant]
    return spec.context == "prediction" or spec.shares_features


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it the way it was trained.

    Parameters
    ----------
    variant : str
        A key of :data:`VARIANTS`.
    encoder : str
        segmentation-models-pytorch encoder name, the same for both branches. Spatial dropout needs
        a ResNet-family encoder (``resnet18``, ``resnet34``, ...).
    dropout_tissue, dropout_cell : float
        Spatial dropout (``nn.Dropout2d``) rate at the end of each ResNet stage, per branch.
    dropout_aspp : float
        Dropout rate after ASPP's projection in both branches (segmentation-models-pytorch's
        0.5; the paper does not give one).
    patch_size : int
        Side in pixels of both the cell and the tissue patch the model was trained on. Inputs of
        another size are resampled to it at inference.
    cell_mpp : float
        Resolution of the cell patch at ``patch_size`` in micrometres per pixel (0.2 for OCELOT at
        1024 px); the tissue patch covers 4x the field of view.
    mean, std : tuple of float
        Per-channel normalisation of RGB values scaled to [0, 1].
    sharing : tuple of str or None
        Feature-sharing only: the exchange at each of :data:`SHARING_POSITIONS`, each one of
        :data:`SHARING_DIRECTIONS`. ``None`` means :data:`DEFAULT_SHARING` for Feature-sharing and
        no exchange for every other variant.
    tissue_input : str
        What the tissue branch reads (one of :data:`TISSUE_INPUTS`): ``"tissue-patch"`` (the
        paper's model) or ``"cell-patch"`` (Table 7's tissue-label-only ablation: the tissue branch
        sees the cell patch, so its map covers exactly the cell region).
    """

    variant: str = "pred-to-inter-2"
    encoder: str = "resnet34"
    dropout_tissue: float = 0.1
    dropout_cell: float = 0.3
    patch_size: int = PATCH_SIZE_PX
    cell_mpp: float = CELL_MPP
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    sharing: tuple[str, str, str] | None = None
    tissue_input: str = "tissue-patch"
    dropout_aspp: float = 0.5

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ModelConfigError(f"variant {self.variant!r} is not one of {sorted(VARIANTS)}")
        if self.patch_size % 16:
            raise ModelConfigError(
                f"patch_size {self.patch_size} px is not a multiple of 16 (the encoder stride)"
            )
        for name in ("dropout_tissue", "dropout_cell", "dropout_aspp"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ModelConfigError(f"{name} {getattr(self, name)} is not in [0, 1)")
        shares = VARIANTS[self.variant].shares_features
        sharing = self.sharing
        if sharing is None:
            sharing = DEFAULT_SHARING if shares else None
        elif not shares:
            raise ModelConfigError(
                f"sharing {list(sharing)} is given but variant {self.variant!r} shares no features"
            )
        if sharing is not None:
            sharing = tuple(sharing)
            if len(sharing) != len(SHARING_POSITIONS) or any(
                direction not in SHARING_DIRECTIONS for direction in sharing
            ):
                raise ModelConfigError(
                    f"sharing {list(sharing)} is not one of {list(SHARING_DIRECTIONS)} for each of "
                    f"{list(SHARING_POSITIONS)}"
                )
        object.__setattr__(self, "sharing", sharing)
        if self.tissue_input not in TISSUE_INPUTS:
            raise ModelConfigError(
                f"tissue_input {self.tissue_input!r} is not one of {TISSUE_INPUTS}"
            )
        if self.tissue_input != "tissue-patch" and not has_tissue_branch(self.variant):
            raise ModelConfigError(
                f"tissue_input {self.tissue_input!r} needs a tissue branch; variant "
                f"{self.variant!r} has none"
            )

    def exchanges(self, direction: str) -> tuple[str, ...]:
        """Positions where features flow in ``direction``: cell-to-tissue or tissue-to-cell."""
        if self.sharing is None:
            return ()
        return tuple(
            position
            for position, kind in zip(SHARING_POSITIONS, self.sharing, strict=True)
            if kind in (direction, "both")
        )

    def to_dict(self) -> dict:
        values = asdict(self)
        if values["sharing"] is not None:
            values["sharing"] = list(values["sharing"])
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        for key in ("mean", "std", "sharing"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)


def crop_to_cell_region(
    maps: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Resample, per sample, the part of a tissue-patch map covered by the cell patch.

    Pixel ``i`` of ``maps`` covers the interval ``[i, i + 1)``; output pixel ``(r, c)`` is the
    average of ``maps`` over its area inside the box (``roi_align`` with ``aligned=True`` and one
    sample per input pixel when shrinking, bilinear interpolation at its centre when enlarging).
    A linear function of the tissue coordinates is therefore reproduced exactly.

    Parameters
    ----------
    maps : Tensor, shape (B, K, H, W)
        Per-pixel maps over the tissue patch (softmax probabilities, features, one-hot labels).
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
    boxes = boxes.to(device=maps.device, dtype=torch.float32)
    rois = torch.cat([batch_index[:, None], boxes], dim=1)
    return roi_align(
        maps.float(),
        rois,
        output_size=tuple(size),
        spatial_scale=1.0,
        sampling_ratio=-1,
        aligned=True,
    )


def place_in_cell_region(
    maps: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Resample cell-patch maps into the cell box of a tissue-patch map; zero outside the box.

    The inverse direction of :func:`crop_to_cell_region`: tissue pixel ``(r, c)`` gets the average
    of ``maps`` over its footprint in cell-patch pixels, weighted by the fraction of its area
    inside the box (1 inside, 0 outside, in between on a box edge that cuts the pixel). A linear
    function of the cell coordinates is reproduced exactly on pixels inside the box whose
    footprint maps onto whole cell pixels (an integer ratio, as 4 for OCELOT's fields of view).

    Parameters
    ----------
    maps : Tensor, shape (B, K, Hc, Wc)
        Per-pixel maps over the cell patch.
    boxes : Tensor, shape (B, 4)
        ``(x0, y0, x1, y1)`` of each sample's cell patch in pixels of the output map.
    size : (int, int)
        ``(height, width)`` in pixels of the tissue map the result is concatenated to.

    Returns
    -------
    Tensor, shape (B, K, height, width), float32
    """
    if boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"boxes has shape {tuple(boxes.shape)}, expected ({maps.shape[0]}, 4)")
    height, width = size
    cell_height, cell_width = maps.shape[-2:]
    boxes = boxes.to(device=maps.device, dtype=torch.float32)
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    scale_x, scale_y = cell_width / (x1 - x0), cell_height / (y1 - y0)
    # The whole tissue map, in cell-patch pixels: roi_align then averages over each footprint.
    batch_index = torch.arange(maps.shape[0], dtype=torch.float32, device=maps.device)
    rois = torch.stack(
        [
            batch_index,
            -x0 * scale_x,
            -y0 * scale_y,
            (width - x0) * scale_x,
            (height - y0) * scale_y,
        ],
        dim=1,
    )
    resampled = roi_align(
        maps.float(),
        rois,
        output_size=(height, width),
        spatial_scale=1.0,
        sampling_ratio=-1,
        aligned=True,
    )
    return resampled * _box_coverage(boxes, height, width)[:, None]


def _box_coverage(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W) fraction of each pixel's area inside each box (pixel edges at integers)."""
    xs = torch.arange(width, dtype=torch.float32, device=boxes.device)
    ys = torch.arange(height, dtype=torch.float32, device=boxes.device)

    def overlap(start: torch.Tensor, stop: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        low = torch.maximum(edges[None], start[:, None])
        high = torch.minimum(edges[None] + 1, stop[:, None])
        return (high - low).clamp(min=0, max=1)

    return (
        overlap(boxes[:, 1], boxes[:, 3], ys)[:, :, None]
        * overlap(boxes[:, 0], boxes[:, 2], xs)[:, None, :]
    )


def add_spatial_dropout(encoder: nn.Module, rate: float) -> None:
    """Append ``nn.Dropout2d(rate)`` to each of the four ResNet stages of ``encoder`` (in place).

    Appending keeps the parameter names of the stages unchanged, so weights load across rates.
    """
    if rate == 0:
        return
    stages = [getattr(encoder, f"layer{k}", None) for k in range(1, 5)]
    if not all(isinstance(stage, nn.Sequential) for stage in stages):
        raise ModelConfigError(
            f"spatial dropout needs a ResNet-family encoder (layer1..layer4), got "
            f"{type(encoder).__name__}"
        )
    for stage in stages:
        stage.append(nn.Dropout2d(rate))


class DeepLabV3PlusBranch(nn.Module):
    """DeepLabV3+ (output stride 16), run in stages, with extra input channels where asked.

    Encoder, decoder modules and head are those of segmentation-models-pytorch; a layer that
    reads a concatenation has that many more input channels. Stages: :meth:`encode` (image ->
    encoder features), :meth:`atrous` (deepest feature -> ASPP output at 1/4 of the input side),
    :meth:`fuse` (ASPP output + low-level feature -> decoder output), :meth:`classify` (head).

    Parameters
    ----------
    encoder : str
        segmentation-models-pytorch encoder name; randomly initialised (nothing is downloaded).
    classes : int
        Output channels (logits).
    dropout : float
        Spatial dropout rate at the end of each encoder stage.
    context_channels : int
        Number of context channels (0 for none) concatenated at ``inject_at`` by :meth:`forward`.
    inject_at : {None, "input", "encoder", "aspp", "decoder"}
        Where the context is concatenated.
    decoder_channels : int
        Width of the ASPP and decoder features.
    aspp_dropout : float
        Dropout rate after ASPP's projection.
    receives : tuple of str
        Positions among :data:`SHARING_POSITIONS` where the other branch's features (of the
        same width as this branch's there) are concatenated by the caller (Feature-sharing).
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
        receives: tuple[str, ...] = (),
        aspp_dropout: float = 0.5,
    ):
        super().__init__()
        if inject_at not in (None, *INJECTION_POINTS):
            raise ValueError(f"inject_at {inject_at!r} is not one of {INJECTION_POINTS} or None")
        if (inject_at is None) != (context_channels == 0):
            raise ValueError("context_channels must be > 0 exactly when inject_at is given")
        if not set(receives) <= set(SHARING_POSITIONS):
            raise ValueError(f"receives {receives} is not a subset of {SHARING_POSITIONS}")
        self.inject_at = inject_at
        extra = {point: context_channels if inject_at == point else 0 for point in INJECTION_POINTS}

        self.encoder = get_encoder(
            encoder, in_channels=3 + extra["input"], depth=5, weights=None, output_stride=16
        )
        add_spatial_dropout(self.encoder, dropout)
        self.channels = {
            "encoder": self.encoder.out_channels[-1],
            "aspp": decoder_channels,
            "decoder": decoder_channels,
        }
        for position in receives:
            extra[position] += self.channels[position]
        encoder_channels = list(self.encoder.out_channels)
        encoder_channels[-1] += extra["encoder"]
        self.decoder = DeepLabV3PlusDecoder(
            encoder_channels=encoder_channels,
            encoder_depth=5,
            out_channels=decoder_channels,
            atrous_rates=(12, 24, 36),
            output_stride=16,
            aspp_separable=True,
            aspp_dropout=aspp_dropout,
        )
        if extra["aspp"]:
            # The fusion convolution reading [ASPP output, low-level feature] reads the extra too.
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
        self.head = SegmentationHead(
            decoder_channels + extra["decoder"], classes, kernel_size=1, upsampling=4
        )
        initialize_decoder(self.decoder)
        initialize_head(self.head)

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features; the last (B, C, H/16, W/16) is the deepest."""
        return self.encoder(image)

    def atrous(self, deepest: torch.Tensor) -> torch.Tensor:
        """ASPP on the deepest feature, upsampled to (B, decoder_channels, H/4, W/4)."""
        return self.decoder.up(self.decoder.aspp(deepest))

    def fuse(self, aspp: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """[ASPP output, reduced low-level feature] -> decoder output (B, channels, H/4, W/4)."""
        return self.decoder.block2(torch.cat([aspp, self.decoder.block1(features[2])], dim=1))

    def classify(self, decoded: torch.Tensor) -> torch.Tensor:
        """Head: logits (B, classes, H, W)."""
        return self.head(decoded)

    def forward(
        self,
        image: torch.Tensor,
        context: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
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
            raise ValueError(
                f"this branch injects context at {self.inject_at!r}: context and boxes are required"
            )
        features = self.encode(attach(image, "input"))
        aspp = attach(self.atrous(attach(features[-1], "encoder")), "aspp")
        return self.classify(attach(self.fuse(aspp, features), "decoder"))


def exchange_convolution(channels: int) -> nn.Sequential:
    """The shallow 3x3 convolution (with batch norm and ReLU) that precedes each exchange."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    )


class ModelOutput(NamedTuple):
    cell_logits: torch.Tensor  # (B, 3, H, W)
    tissue_logits: torch.Tensor | None  # (B, 2, Ht, Wt); None for variants without a tissue branch


def tissue_one_hot(tissue_label: torch.Tensor) -> torch.Tensor:
    """(B, H, W) targets (0, 1, or 255 = unknown) -> (B, 2, H, W) float one-hot, unknown zero."""
    known = tissue_label != TISSUE_IGNORE_INDEX
    one_hot = F.one_hot(torch.where(known, tissue_label, 0).long(), len(TISSUE_CLASSES))
    return (one_hot * known[..., None]).permute(0, 3, 1, 2).float()


def whole_patch_boxes(images: torch.Tensor) -> torch.Tensor:
    """(B, 4) boxes ``(0, 0, W, H)`` covering each of ``images`` (B, C, H, W)."""
    height, width = images.shape[-2:]
    box = torch.tensor([0.0, 0.0, float(width), float(height)], device=images.device)
    return box.expand(images.shape[0], 4)


class CellTissueModel(nn.Module):
    """Cell branch, plus a tissue branch when the variant uses the tissue prediction or features.

    Parameters
    ----------
    config : ModelConfig
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.variant = VARIANTS[config.variant]
        context_channels = len(TISSUE_CLASSES) if self.variant.context else 0
        to_cell = config.exchanges("tissue-to-cell")
        to_tissue = config.exchanges("cell-to-tissue")
        self.tissue_branch = (
            DeepLabV3PlusBranch(
                config.encoder,
                len(TISSUE_CLASSES),
                config.dropout_tissue,
                receives=to_tissue,
                aspp_dropout=config.dropout_aspp,
            )
            if has_tissue_branch(config.variant)
            else None
        )
        self.cell_branch = DeepLabV3PlusBranch(
            config.encoder,
            len(CELL_CLASSES),
            config.dropout_cell,
            context_channels,
            self.variant.injection,
            receives=to_cell,
            aspp_dropout=config.dropout_aspp,
        )
        channels = self.cell_branch.channels
        # Named "<position>_<direction>"; absent for every variant but Feature-sharing.
        self.exchanges = nn.ModuleDict(
            {
                f"{position}_tissue_to_cell": exchange_convolution(channels[position])
                for position in to_cell
            }
            | {
                f"{position}_cell_to_tissue": exchange_convolution(channels[position])
                for position in to_tissue
            }
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
            Normalised tissue patch (variants with a tissue branch reading the tissue patch).
        cell_box : Tensor, shape (B, 4)
            ``(x0, y0, x1, y1)`` of the cell patch in tissue-patch pixels (variants with context).
        tissue_label : Tensor, shape (B, Ht, Wt)
            Tissue targets, 0 / 1 / 255 (the leaking variant only).

        Returns
        -------
        ModelOutput
            Cell logits over the cell patch; tissue logits over the tissue branch's input (the
            cell patch when ``config.tissue_input`` is ``"cell-patch"``).
        """
        if self.tissue_branch is not None and self.config.tissue_input == "cell-patch":
            tissue_image, cell_box = cell_image, whole_patch_boxes(cell_image)
        if self.tissue_branch is not None and tissue_image is None:
            raise ValueError(f"variant {self.config.variant!r} needs the tissue image")
        if self.variant.shares_features:
            return self._forward_sharing(cell_image, tissue_image, cell_box)
        tissue_logits = None
        context = None
        if self.variant.context == "prediction":
            tissue_logits = self.tissue_branch(tissue_image)
            context = tissue_logits.float().softmax(dim=1)
        elif self.variant.context == "ground_truth":
            if tissue_label is None:
                raise ValueError(f"variant {self.config.variant!r} needs the tissue annotation")
            context = tissue_one_hot(tissue_label)
        return ModelOutput(self.cell_branch(cell_image, context, cell_box), tissue_logits)

    def _exchange(
        self,
        position: str,
        cell: torch.Tensor,
        tissue: torch.Tensor,
        boxes: torch.Tensor,
        tissue_side: tuple[int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both branches' features at ``position`` after the configured exchanges.

        Each direction uses the other branch's features from before this exchange.
        """
        height, width = tissue.shape[-2:]
        scale = torch.tensor(
            [width / tissue_side[1], height / tissue_side[0]] * 2, device=boxes.device
        )
        feature_boxes = boxes.float() * scale  # the cell box in pixels of the tissue feature map
        cell_parts, tissue_parts = [cell], [tissue]
        name = f"{position}_tissue_to_cell"
        if name in self.exchanges:
            shared = crop_to_cell_region(
                self.exchanges[name](tissue), feature_boxes, cell.shape[-2:]
            )
            cell_parts.append(shared.to(cell.dtype))
        name = f"{position}_cell_to_tissue"
        if name in self.exchanges:
            shared = place_in_cell_region(
                self.exchanges[name](cell), feature_boxes, (height, width)
            )
            tissue_parts.append(shared.to(tissue.dtype))
        return torch.cat(cell_parts, dim=1), torch.cat(tissue_parts, dim=1)

    def _forward_sharing(
        self, cell_image: torch.Tensor, tissue_image: torch.Tensor, cell_box: torch.Tensor | None
    ) -> ModelOutput:
        if cell_box is None:
            raise ValueError(f"variant {self.config.variant!r} needs the cell box")
        cell_branch, tissue_branch = self.cell_branch, self.tissue_branch
        tissue_side = tuple(tissue_image.shape[-2:])
        cell_features = cell_branch.encode(cell_image)
        tissue_features = tissue_branch.encode(tissue_image)
        cell, tissue = self._exchange(
            "encoder", cell_features[-1], tissue_features[-1], cell_box, tissue_side
        )
        cell, tissue = self._exchange(
            "aspp", cell_branch.atrous(cell), tissue_branch.atrous(tissue), cell_box, tissue_side
        )
        cell, tissue = self._exchange(
            "decoder",
            cell_branch.fuse(cell, cell_features),
            tissue_branch.fuse(tissue, tissue_features),
            cell_box,
            tissue_side,
        )
        return ModelOutput(cell_branch.classify(cell), tissue_branch.classify(tissue))
