"""Dice loss of both branches, as in the paper (unknown tissue pixels ignored).

The Dice loss is segmentation-models-pytorch's multiclass ``DiceLoss`` (``from_logits``, smooth 0,
eps 1e-7), written out so that its sums over the batch can be summed over the processes of a
data-parallel run too: the loss is then the Dice loss of the global batch, as one process would
compute it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from baseline_algorithm.model import TISSUE_IGNORE_INDEX, ModelOutput

__all__ = ["CellTissueDiceLoss", "Reduction", "dice_loss"]

Reduction = Callable[[torch.Tensor], torch.Tensor]
"""Sums a tensor over the processes of a run (identity for one process), keeping the gradient."""


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None = None,
    reduce: Reduction = _local,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Multiclass soft Dice loss, averaged over classes; classes absent from the target count 0.

    Parameters
    ----------
    logits : Tensor, shape (B, C, H, W)
    target : Tensor, shape (B, H, W), int64
        Class indices, or ``ignore_index`` where no loss is computed.
    ignore_index : int, optional
    reduce : callable
        Applied to the per-class sums (prediction, target, absolute difference) before the
        score: the cross-process sum in data-parallel training.
    eps : float
        Lower bound of the denominator.

    Returns
    -------
    Tensor, scalar
        ``mean over classes of (1 - dice) * [class occurs in the target]``.
    """
    classes = logits.shape[1]
    # float32 whatever the logits' dtype: the sums run over every pixel of the global batch.
    probabilities = logits.float().log_softmax(dim=1).exp().flatten(2)  # (B, C, N)
    target = target.flatten(1)
    if ignore_index is not None:
        known = target != ignore_index
        probabilities = probabilities * known[:, None]
        one_hot = F.one_hot(torch.where(known, target, 0), classes).permute(0, 2, 1)
        one_hot = one_hot * known[:, None]
    else:
        one_hot = F.one_hot(target, classes).permute(0, 2, 1)
    one_hot = one_hot.to(probabilities.dtype)
    sums = torch.stack(
        [
            probabilities.sum(dim=(0, 2)),
            one_hot.sum(dim=(0, 2)),
            (probabilities - one_hot).abs().sum(dim=(0, 2)),
        ]
    )
    predicted, present, difference = reduce(sums)
    intersection = (predicted + present - difference) / 2
    score = intersection / (
        intersection + 0.5 * (predicted - intersection) + 0.5 * (present - intersection)
    ).clamp_min(eps)
    return ((1.0 - score) * (present > 0).to(score.dtype)).mean()


class CellTissueDiceLoss(nn.Module):
    """Sum of the multiclass Dice losses of the cell branch and (when present) the tissue branch.

    Each Dice loss is ``1 - dice`` averaged over the classes, counting 0 for a class absent from
    the batch's target, computed from the softmax of the logits in float32.

    Parameters
    ----------
    tissue_weight : float
        Weight of the tissue loss in the total; 0 trains the tissue branch through the cell loss
        alone (Table 7's large-field-of-view-only ablation). The tissue loss is still reported.
    reduce : callable
        Cross-process sum of the Dice sums (see :func:`dice_loss`); identity by default.
    """

    def __init__(self, tissue_weight: float = 1.0, reduce: Reduction = _local):
        super().__init__()
        self.tissue_weight = tissue_weight
        self.reduce = reduce

    def forward(
        self,
        output: ModelOutput,
        cell_target: torch.Tensor,
        tissue_target: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses ``{"loss": total, "cell": ..., "tissue": ...}`` (tissue with a tissue branch).

        Parameters
        ----------
        output : ModelOutput
            Cell logits (B, 3, H, W) and tissue logits (B, 2, Ht, Wt) or None.
        cell_target : Tensor, shape (B, H, W), int64
            0 background, 1 BC, 2 TC.
        tissue_target : Tensor, shape (B, Ht, Wt), int64
            0 background, 1 cancer area, 255 ignored.
        """
        losses = {"cell": dice_loss(output.cell_logits, cell_target, reduce=self.reduce)}
        if output.tissue_logits is not None:
            losses["tissue"] = dice_loss(
                output.tissue_logits, tissue_target, TISSUE_IGNORE_INDEX, self.reduce
            )
        losses["loss"] = losses["cell"]
        if "tissue" in losses:
            # Multiplying by 0 keeps the tissue head in the graph (no unused parameters in DDP).
            losses["loss"] = losses["loss"] + self.tissue_weight * losses["tissue"]
        return losses
