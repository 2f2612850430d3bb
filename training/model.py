"""The three networks for training: the detector's own modules (mtcnn_fast.nets) returning raw
class logits, with the paper's landmark head added to P-Net and R-Net while training (the
released P-Net and R-Net have none; the head is dropped on export, so the exported weights load
into FaceDetector unchanged)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from mtcnn_fast.nets import NETS, WEIGHT_FILES, PNet, RNet


class TrainNet(nn.Module):
    """Wraps one detector network: forward gives (logits (N, 2), box (N, 4), landmarks (N, 10))."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        if stage not in NETS:
            raise ValueError(f"stage must be one of {sorted(NETS)}, got {stage!r}")
        self.stage = stage
        self.net = NETS[stage]()
        if stage == "pnet":
            self.landmark_head = nn.Conv2d(32, 10, 1)
        elif stage == "rnet":
            self.landmark_head = nn.Linear(128, 10)
        else:
            self.landmark_head = None

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        n = self.net
        if isinstance(n, PNet):
            x = n.pool1(n.prelu1(n.conv1(x)))
            x = n.prelu3(n.conv3(n.prelu2(n.conv2(x))))
            return n.conv4_1(x).flatten(1), n.conv4_2(x).flatten(1), self.landmark_head(x).flatten(1)
        if isinstance(n, RNet):
            x = n.pool1(n.prelu1(n.conv1(x)))
            x = n.pool2(n.prelu2(n.conv2(x)))
            x = n.prelu4(n.fc4(n.prelu3(n.conv3(x)).flatten(1)))
            return n.fc5_1(x), n.fc5_2(x), self.landmark_head(x)
        x = n.pool1(n.prelu1(n.conv1(x)))
        x = n.pool2(n.prelu2(n.conv2(x)))
        x = n.pool3(n.prelu3(n.conv3(x)))
        x = n.prelu5(n.fc5(n.prelu4(n.conv4(x)).flatten(1)))
        return n.fc6_1(x), n.fc6_2(x), n.fc6_3(x)

    def detector_state(self) -> Dict[str, np.ndarray]:
        """The detector network's parameters only, as float32 arrays (the .npz weight format)."""
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.net.state_dict().items()}


def export(model: TrainNet, weights_dir) -> Path:
    """Writes the network's weights as weights_dir/<stage>.npz, the file FaceDetector(weights=
    weights_dir) loads (written to a temporary name, then renamed)."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / WEIGHT_FILES[model.stage]
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **model.detector_state())
    tmp.replace(path)
    return path


def init_weights_dir(weights_dir, seed: int = 0) -> None:
    """Fills weights_dir with freshly initialised networks for the stages not trained yet, so that
    a FaceDetector can be built there from the first stage on (only the trained stages are run)."""
    torch.manual_seed(seed)
    for stage in NETS:
        if not (Path(weights_dir) / WEIGHT_FILES[stage]).is_file():
            export(TrainNet(stage), weights_dir)
