"""The paper's multi-task loss: cross-entropy for face / non-face with online hard sample mining,
Euclidean losses for box offsets and landmarks, each on the sample kinds it belongs to."""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .samples import LANDMARK, NEG, PART, POS

STAGE_WEIGHTS = {"pnet": (1.0, 0.5, 0.5), "rnet": (1.0, 0.5, 0.5), "onet": (1.0, 0.5, 1.0)}
OHEM_KEEP = 0.7


def hardest(losses: Tensor, keep: float = OHEM_KEEP) -> Tensor:
    """Indices of the ceil(keep * n) largest losses (online hard sample mining)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must lie in (0, 1], got {keep}")
    k = math.ceil(keep * losses.numel())
    return torch.topk(losses, k, sorted=False).indices


def classification_loss(logits: Tensor, kind: Tensor, keep: float = OHEM_KEEP) -> Tensor:
    """Cross-entropy over negatives and positives only, averaged over the hardest `keep` of them."""
    mask = (kind == NEG) | (kind == POS)
    if not bool(mask.any()):
        return logits.sum() * 0.0
    target = (kind[mask] == POS).long()
    per_sample = F.cross_entropy(logits[mask], target, reduction="none")
    return per_sample[hardest(per_sample.detach(), keep)].mean()


def masked_euclidean(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean over the masked samples of the squared Euclidean distance (0 when none is masked)."""
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return ((pred[mask] - target[mask]) ** 2).sum(dim=1).mean()


def multitask_loss(outputs: Tuple[Tensor, Tensor, Tensor], kind: Tensor, box: Tensor, points: Tensor,
                   weights: Sequence[float], keep: float = OHEM_KEEP) -> Tuple[Tensor, Dict[str, float]]:
    """weights = (det, box, landmark). Returns the total and the three parts (as floats)."""
    logits, box_pred, points_pred = outputs
    det = classification_loss(logits, kind, keep)
    reg = masked_euclidean(box_pred, box, (kind == POS) | (kind == PART))
    lmk = masked_euclidean(points_pred, points, kind == LANDMARK)
    total = weights[0] * det + weights[1] * reg + weights[2] * lmk
    return total, {"det": det.item(), "box": reg.item(), "landmark": lmk.item()}
