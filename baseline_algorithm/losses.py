"""Dice loss of both branches, as in the paper (unknown tissue pixels ignored)."""

from __future__ import annotations

import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn

from .model import TISSUE_IGNORE_INDEX, ModelOutput


class CellTissueDiceLoss(nn.Module):
    """Sum of the multiclass Dice losses of the cell branch and (when present) the tissue branch.

    Each Dice loss is ``1 - dice`` averaged over the classes that occur in the batch's target,
    computed from the softmax of the logits in float32.

    Parameters
    ----------
    tissue_weight : float
        Weight of the tissue loss in the total; 0 trains the tissue branch through the cell loss
        alone (Table 7's large-field-of-view-only ablation). The tissue loss is still reported.
    """

    def __init__(self, tissue_weight: float = 1.0):
        super().__init__()
        self.tissue_weight = tissue_weight
        self.cell = DiceLoss("multiclass", from_logits=True)
        self.tissue = DiceLoss("multiclass", from_logits=True, ignore_index=TISSUE_IGNORE_INDEX)

    def forward(
        self, output: ModelOutput, cell_target: torch.Tensor, tissue_target: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Losses ``{"loss": total, "cell": ..., "tissue": ...}`` (tissue only with a tissue branch).

        Parameters
        ----------
        output : ModelOutput
            Cell logits (B, 3, H, W) and tissue logits (B, 2, Ht, Wt) or None.
        cell_target : Tensor, shape (B, H, W), int64
            0 background, 1 BC, 2 TC.
        tissue_target : Tensor, shape (B, Ht, Wt), int64
            0 background, 1 cancer area, 255 ignored.
        """
        losses = {"cell": self.cell(output.cell_logits.float(), cell_target)}
        if output.tissue_logits is not None:
            losses["tissue"] = self.tissue(output.tissue_logits.float(), tissue_target)
        losses["loss"] = losses["cell"]
        if "tissue" in losses:
            # Multiplying by 0 keeps the tissue head in the graph (no unused parameters in DDP).
            losses["loss"] = losses["loss"] + self.tissue_weight * losses["tissue"]
        return losses
