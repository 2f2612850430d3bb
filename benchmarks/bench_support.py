"""Helpers shared by the benchmark modules."""

import numpy as np
import torch

import frames as frame_sets

from mtcnn_fast import _core

SIZES = list(frame_sets.SIZES) + ["wider"]


def frames_for(size: str):
    """Two frames of a named size, or four WIDER photos at their own size for "wider"."""
    return frame_sets.wider_photos(4) if size == "wider" else frame_sets.frames(size, 2)


def same_detections(a, b) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("boxes", "scores", "landmarks"))


def nchw(batch):
    """The core's (N, H, W, 3) output as the networks' NCHW input (channels-last, no copy)."""
    return torch.from_numpy(batch).permute(0, 3, 1, 2)


def stage_inputs(detector, img):
    """What each stage receives for this frame, computed once outside the timed calls: the
    pyramid scales, P-Net's proposals and R-Net's refined windows."""
    scales = _core.pyramid_scales(*img.shape[:2], detector.min_face_size, detector.scale_factor)
    proposals = detector.propose(img)
    refined = detector.refine(img, proposals) if len(proposals) else proposals
    return scales, proposals, refined


def time_frames(benchmark, detector, frames, mode: str):
    """Times `detector` on the frames as one list ("batch") or one at a time ("alone");
    returns the detections of the timed call."""
    if mode == "batch":
        return benchmark(detector.detect, frames)
    return benchmark(lambda: [detector.detect(f) for f in frames])
