"""FaceDetector: the MTCNN cascade (P-Net -> R-Net -> O-Net) over an image pyramid.

The pipeline follows the original MATLAB release (v1) of Zhang et al.; ../shared/REFERENCE.md
lists its conventions. Each stage is one function with arrays in and arrays out; the detector
object owns only its configuration and the three networks, so one detector can be shared
between threads.

Coordinates: outputs are the networks' numbers unchanged. The networks were trained on WIDER
FACE boxes, so boxes and landmarks live in the frame of those annotations, which Python tools
read as 0-based pixel coordinates (pixel (0, 0) is the top-left pixel of the array). This is
what facenet-pytorch and ipazc/mtcnn return too.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np
import torch

from . import _malloc
from ._detections import Detections, Face  # noqa: F401  (Face: re-exported)
from ._input import Integer, Number, as_float, as_frame_list, as_int, as_rgb_frame, is_batch
from .metrics import iou_matrix
from .nets import compile_net, load_net
from .ops import get_ops

# Overlap thresholds of the original pipeline: per pyramid level, over all levels, after R-Net
# (all "union") and after O-Net ("min").
NMS_PER_SCALE = 0.5
NMS_PROPOSALS = 0.7
NMS_REFINE = 0.7
NMS_OUTPUT = 0.7
NMS_DEFAULT = (NMS_PER_SCALE, NMS_PROPOSALS, NMS_REFINE, NMS_OUTPUT)
# Flipped passes: a face of the frame and of its mirror image are one face when their boxes
# overlap this much (IoU, +1 areas as the NMS computes them).
VOTE_IOU = 0.5
# Landmark order after mirroring: the image-left eye and mouth corner swap with the right ones.
MIRRORED_POINTS = [1, 0, 2, 4, 3]
# Named settings (FaceDetector.preset): "original" is the defaults of the original release;
# "widerface" the setting that gave the highest WIDER FACE AP found on wider_val_dev (mean of
# easy, medium and hard within 1 s per photo at 2 threads: 0.849 / 0.844 / 0.665 against
# 0.807 / 0.790 / 0.513; benchmarks/preset_search.py, benchmarks/accuracy.md).
PRESETS = {
    "original": {},
    "widerface": {"min_face_size": 12.0, "thresholds": (0.3, 0.3, 0.4), "flip": True},
}
RNET_SIZE = 24
ONET_SIZE = 48
# Batches: frames whose R-Net and O-Net windows share a forward pass. On the CPU R-Net's and
# O-Net's first blocks run in chunks of CHUNK_ROWS windows (per input size; the rest of each
# network once over a cut's windows, see _run) and P-Net on bands of a level's rows, so
# that a pass's largest activation stays within a few MB: R-Net's first one is 28 x 22 x 22
# floats (54 KB) per window, 3.5 MB per chunk; O-Net's 32 x 46 x 46 (271 KB), 4.3 MB per chunk;
# P-Net's at most ACTIVATION_BYTES per band.
# Whole-level passes and chunks of 128 R-Net windows (6.9 MB; P-Net's first activation on a
# 1920x1080 frame is 30 MB) made every detection allocate, free and fault in again 14 to 52 MB
# under glibc's default settings (640x480 to 1920x1080: 3,400 to 13,000 page faults per frame,
# 7 to 30 ms of system time) unless keep_freed_memory raised glibc's thresholds; now the heap
# serves each frame from the memory the previous one freed (1280x720, 1920x1080: tens to
# hundreds of page faults per frame; a small frame whose peak sits just above glibc's adaptive
# trim threshold can still fault, as one 640x480 frame did: benchmarks/README.md, issue #18).
# Smaller passes would fault less but cost more: every network call has a fixed cost (R-Net on
# one window 0.75 ms, O-Net 1.5 ms). A window's outputs do not depend on the batch, chunk or
# position it runs in: on the CPU every layer runs on oneDNN's convolution (nets.OneDNNConv2d).
# CUDA keeps its larger passes (its caching allocator keeps its memory; smaller passes would
# only add kernel launches).
# P-Net's bands are half the chunks' size: a band holds its first activation and the PReLU's
# output of it at once, and with 4 MB first activations that pair (8 MB and more) reached the
# trim threshold glibc adapts to the chunks' blocks (twice the largest block freed), so glibc
# handed the top of the heap back between bands and the next band faulted it in again: after
# the trim of a frame of a new size (trim_memory) the first band of a photo's largest level
# faulted 2,437 pages, each further band about 446. At 2 MB: 10 WIDER photos in turn, 1 thread,
# 0.89x the time (14 pairs of processes; 4,200 against 7,500 page faults per photo); even with
# keep_freed_memory, at 2 threads, and on frames of one size (640x480: 1.01x, one band more on
# its largest level; benchmarks/README.md).
BATCH_FRAMES = 16
ACTIVATION_BYTES = 2 << 20
CHUNK_ROWS = {RNET_SIZE: 64, ONET_SIZE: 16}
CUDA_CHUNK_ROWS = {RNET_SIZE: 128, ONET_SIZE: 32}
# P-Net's bands: a multiple of this many output rows (a band recomputes 8 rows of its first
# layer and 2 of its second where it meets the next one: 3% more work at 16 rows). torch's
# softmax takes its face probabilities 16 values at a time (an AVX-512 vector; 8 with AVX2)
# and the last few of a map another way, which differs in the last bit; bands of a multiple of
# 16 rows start on that grid, so at one thread they give exactly the bits of one pass over the
# whole level. At more threads torch splits the softmax elsewhere and a few probabilities move
# by up to two units in the last place (a whole level's move by one between 1 and 2 threads);
# the box offsets never change.
PNET_BAND_ROWS = 16
# Crops are cut for at most this many bytes of windows at a time (in whole chunks): 2,368 R-Net
# or 592 O-Net windows, more than a photo gives at the default settings (about 400 and 50).
CROP_BYTES = 16 << 20
# The pyramid's levels and the crops are written into one float32 buffer per thread that the
# detector keeps from call to call (the levels are done with before the first crops are cut,
# and each cut before the next), up to this many bytes; a frame that needs more gets new
# arrays, as every frame did before. New arrays every frame went through the C heap, and after
# the trim that follows a frame of a new size (trim_memory) they were faulted in again page by
# page (benchmarks/README.md: 10 WIDER photos in turn, 0.92x the time). 32 MB holds the levels
# of frames up to 2560x1440 at min face 20 (30.6 MB; 1920x1080: 17.2 MB) and a cut of
# CROP_BYTES; it is what each thread that calls the detector keeps, at most, while the detector
# lives.
SCRATCH_BYTES = 32 << 20
# Refused up front: closer to 1, a photo's pyramid needs hundreds of levels (0.99: 317 for a
# 640 x 480 frame at min face 20), and beyond about 0.9935 even frames the size limit admits can
# need more than the core's 1000 (which it refuses only when it meets such a frame).
MAX_SCALE_FACTOR = 0.99
PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NETWORKS = ("pnet", "rnet", "onet")
# A precision name for all three networks, or a mapping from some of NETWORKS to names.
PrecisionArg = Union[str, Mapping[str, str]]


def finite_rows(*arrays: np.ndarray):
    """The arrays restricted to the rows (first axis) where every value of every array is
    finite. Network outputs are finite for any valid frame; this keeps a corrupt weight file or
    a faulty device from feeding NaN or inf boxes to the core (which would refuse them)."""
    if all(np.isfinite(a).all() for a in arrays):  # the usual case: no row to drop
        return arrays
    ok = np.ones(len(arrays[0]), bool)
    for a in arrays:
        ok &= np.isfinite(a).reshape(len(a), -1).all(axis=1) if a.size else ok
    return tuple(a[ok] for a in arrays)


def _mirror(faces: Detections, width: int) -> Detections:
    """Detections of a mirrored frame in the frame's own coordinates: x -> width - 1 - x, boxes'
    sides exchanged, left and right landmarks swapped back."""
    if not len(faces):
        return faces
    last = np.float32(width - 1)
    boxes = faces.boxes[:, [2, 1, 0, 3]].copy()
    boxes[:, [0, 2]] = last - boxes[:, [0, 2]]
    points = faces.landmarks[:, MIRRORED_POINTS].copy()
    points[:, :, 0] = last - points[:, :, 0]
    return Detections(boxes, faces.scores.copy(), points)


def _vote(a: Detections, b: Detections) -> Detections:
    """Merges two passes over one frame by box voting: best score first, each remaining face
    takes every face of either pass that overlaps it by VOTE_IOU or more; the group's box and
    landmarks are their score-weighted means, its score the highest. Deterministic (stable
    order: score, then pass a before b, then index)."""
    boxes = np.concatenate([a.boxes, b.boxes]).astype(np.float64)
    scores = np.concatenate([a.scores, b.scores]).astype(np.float64)
    points = np.concatenate([a.landmarks, b.landmarks]).astype(np.float64)
    if not len(scores):
        return Detections.empty()
    overlaps = iou_matrix(boxes, boxes, plus_one=True) >= VOTE_IOU
    left = np.ones(len(scores), bool)
    out_boxes, out_scores, out_points = [], [], []
    for i in np.argsort(-scores, kind="stable"):
        if not left[i]:
            continue
        group = left & overlaps[i]
        group[i] = True
        weight = scores[group] / scores[group].sum()
        out_boxes.append(weight @ boxes[group])
        out_points.append(np.tensordot(weight, points[group], axes=1))
        out_scores.append(scores[i])
        left &= ~group
    return Detections(np.asarray(out_boxes, np.float32).reshape(-1, 4), np.asarray(out_scores, np.float32),
                      np.asarray(out_points, np.float32).reshape(-1, 5, 2))


def _unit_numbers(name: str, values, count: int) -> tuple:
    """`count` numbers in [0, 1] (numpy ones included) as a tuple of floats; TypeError for what
    is not a sequence of numbers, ValueError for the wrong count or range."""
    words = {3: "three", 4: "four"}[count]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be {words} numbers, got {type(values).__name__}")
    values = tuple(as_float(name, v) for v in values)
    if len(values) != count or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{name} must be {words} numbers in [0, 1], got {values}")
    return values


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    """"auto" picks CUDA when available, else the CPU; asking for CUDA without it is an error."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return dev


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX-512 BF16 or AMX), as oneDNN reports it."""
    supported = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    return supported is not None and bool(supported())


def network_precisions(precision: PrecisionArg) -> Dict[str, str]:
    """Each network's precision name ("pnet", "rnet", "onet", in that order) from ``precision``:
    one name for all three, or a mapping whose networks left out run in float32. Unknown names
    and networks are refused; whether the device runs a name is check_precision's question."""
    if isinstance(precision, str):
        names = dict.fromkeys(NETWORKS, precision)
    elif isinstance(precision, Mapping):
        unknown = [k for k in precision if k not in NETWORKS]
        if unknown:
            raise ValueError(f"precision: unknown network(s) {unknown}; the networks are 'pnet', 'rnet' and 'onet'")
        names = {net: precision.get(net, "float32") for net in NETWORKS}
    else:
        raise TypeError(f"precision must be a name ({', '.join(sorted(PRECISIONS))}) or a mapping from "
                        f"'pnet', 'rnet', 'onet' to one, got {type(precision).__name__}")
    for name in names.values():
        if not isinstance(name, str) or name not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {name!r}")
    return names


def precision_setting(precision: PrecisionArg) -> Union[str, Dict[str, str]]:
    """``precision`` as a detector keeps (and reports) it: the one name when every network has
    it, else the dict of network_precisions."""
    names = network_precisions(precision)
    return names["pnet"] if len(set(names.values())) == 1 else names


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    """The torch dtype for a precision name, refused where the device cannot run it natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "float16" and device.type != "cuda":
        raise ValueError("precision 'float16' runs on CUDA only; on the CPU use 'bfloat16' or 'float32'")
    if precision == "bfloat16" and device.type == "cpu" and not cpu_has_bf16():
        raise ValueError("precision 'bfloat16' needs a CPU with native bfloat16 (AVX-512 BF16 or AMX)")
    return PRECISIONS[precision]


class FaceDetector:
    """MTCNN face and five-landmark detector.

    Args:
        min_face_size: smallest face side, in pixels, that the pyramid looks for (default 20).
        thresholds: score thresholds of P-Net, R-Net and O-Net (default 0.6, 0.7, 0.7).
        scale_factor: ratio between pyramid levels (default 0.709).
        device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
        weights: folder holding pnet.npz, rnet.npz and onet.npz; default the original weights
            shipped in the package (MIT, Copyright (c) 2016 Kaipeng Zhang).
        backend: "cpp" (the compiled core) or "numpy" (its plain reference twin; slow, for
            checking).
        jit: run the networks as TorchScript (default); False runs them eagerly. Both give
            identical detections.
        precision: "float32" (default), "bfloat16" (CPUs with native bf16, AVX-512 BF16 or AMX,
            and CUDA) or "float16" (CUDA only): the networks' arithmetic. Reduced precision moves
            scores and boxes slightly; benchmarks/accuracy.md gives its speed and AP change. A
            mapping sets it per network, the others in float32: ``{"onet": "bfloat16"}`` was
            the fastest setting measured on an AMD EPYC with AVX-512 BF16 (O-Net 1.4x faster,
            the detection 1.01 to 1.06x; slower on an Intel Xeon without AMX; accuracy.md).
        keep_freed_memory: opt-in (default False), a setting of the whole process: under glibc,
            raise the allocator's mmap and trim thresholds (once per process, where glibc's own
            malloc serves it, unless the environment sets them) so that each frame reuses the
            memory the previous one freed instead of faulting it in again from the system. The
            detector's bands and chunks (ACTIVATION_BYTES) already give most frames of one size
            that without it (1280x720 and 1920x1080 measured as fast by default); some small
            frames still fault per frame (a 640x480 one: 4,200 pages). The price: a resident
            size that stays near its peak and, fed frames of ever new sizes, keeps growing
            (``mtcnn_fast._malloc``, benchmarks/README.md).
        trim_memory: after a call on frames of another size than the previous call's, hand the
            free pages of the C heap back to the system (glibc's ``malloc_trim``; default True),
            so that a long-lived process fed photos of new sizes keeps a flat resident size, at
            the price of page faults on the next frame (1.5 to 1.7x the median time per frame
            on a stream where every frame is a new size, 1.2 to 1.35x on a few photos' sizes in
            turn; benchmarks/README.md). A stream of one size never triggers it. It changes no
            allocator setting (the freed memory of the whole process is returned, the caller's
            included); off with keep_freed_memory, under other C libraries or allocators, and
            where the environment sets glibc's malloc parameters. A service that wants the
            memory flat and the time too can run under jemalloc (``LD_PRELOAD=libjemalloc.so.2``,
            the user's choice for the whole process): the detector then leaves memory to it
            (neither setting acts), and on a stream of new sizes it stayed flat at
            keep_freed_memory's speed or better (README, "Memory").
        nms_thresholds: overlaps of the four non-maximum suppressions (per pyramid level, over
            all levels, after R-Net, after O-Net; default 0.5, 0.7, 0.7, 0.7, the original's).
        flip: also run the cascade on the mirror image of each frame and merge the two passes
            by box voting (a face found in both: score-weighted mean box and landmarks, the
            higher score). About twice the time; for benchmark settings, off by default.

    ``FaceDetector.preset(name)`` makes a detector with named settings ("widerface": the highest
    WIDER FACE AP found; see ``PRESETS`` and benchmarks/accuracy.md).

    ``detect`` returns boxes and landmarks in the networks' own frame, unchanged: that of the
    WIDER FACE annotations, read as 0-based pixel coordinates, as facenet-pytorch and
    ipazc/mtcnn return them.

    Memory: the pyramid's levels and the windows' crops are written into a buffer that the
    detector keeps for each thread that calls it, from call to call (at most SCRATCH_BYTES, 32
    MB: the levels of a 2560x1440 frame; larger frames get new arrays), so that they take no
    new memory from the system on every frame.
    """

    def __init__(
        self,
        min_face_size: Number = 20.0,
        thresholds: Union[Sequence[Number], np.ndarray] = (0.6, 0.7, 0.7),
        scale_factor: Number = 0.709,
        device: Union[str, torch.device] = "auto",
        *,
        weights: Union[None, str, Path] = None,
        backend: str = "cpp",
        jit: bool = True,
        precision: PrecisionArg = "float32",
        keep_freed_memory: bool = False,
        trim_memory: bool = True,
        nms_thresholds: Sequence[float] = NMS_DEFAULT,
        flip: bool = False,
    ) -> None:
        min_face_size = as_float("min_face_size", min_face_size)
        if not np.isfinite(min_face_size) or min_face_size <= 0:
            raise ValueError(f"min_face_size must be a finite number > 0, got {min_face_size}")
        thresholds = _unit_numbers("thresholds", thresholds, 3)
        scale_factor = as_float("scale_factor", scale_factor)
        if not 0.0 < scale_factor < 1.0:
            raise ValueError(f"scale_factor must lie strictly between 0 and 1, got {scale_factor}")
        if scale_factor > MAX_SCALE_FACTOR:
            raise ValueError(f"scale_factor must be at most {MAX_SCALE_FACTOR} (closer to 1 the pyramid "
                             f"needs hundreds of levels; the original uses 0.709), got {scale_factor}")
        nms_thresholds = _unit_numbers("nms_thresholds", nms_thresholds, 4)
        if not isinstance(flip, (bool, np.bool_)):
            raise TypeError(f"flip must be True or False, got {type(flip).__name__}")
        for name, flag in (("keep_freed_memory", keep_freed_memory), ("trim_memory", trim_memory)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {type(flag).__name__}")
        self.trim_memory = bool(trim_memory)
        self._held = threading.local()  # per thread: its scratch buffer (SCRATCH_BYTES)
        self._last_sizes: Tuple[Tuple[int, int], ...] = ()
        self.min_face_size = float(min_face_size)
        self.thresholds: Tuple[float, float, float] = thresholds  # type: ignore[assignment]
        self.scale_factor = float(scale_factor)
        self.nms_thresholds: Tuple[float, float, float, float] = nms_thresholds  # type: ignore[assignment]
        self.flip = bool(flip)
        self.device = resolve_device(device)
        self.backend = backend
        self._ops = get_ops(backend)
        self.precision = precision_setting(precision)
        dtypes = [check_precision(name, self.device) for name in network_precisions(precision).values()]
        self.pnet, self.rnet, self.onet = [
            compile_net(load_net(name, weights).to(self.device, dtype, memory_format=torch.channels_last), jit)
            for name, dtype in zip(NETWORKS, dtypes)
        ]
        self._dtypes = dict(zip(NETWORKS, dtypes))
        if keep_freed_memory:  # last: a detector that could not be made changes nothing
            _malloc.keep_freed_memory()

    def __repr__(self) -> str:
        return (
            f"FaceDetector(min_face_size={self.min_face_size}, thresholds={self.thresholds}, "
            f"scale_factor={self.scale_factor}, device='{self.device}', backend='{self.backend}', "
            f"precision={self.precision!r}, nms_thresholds={self.nms_thresholds}, flip={self.flip})"
        )

    @classmethod
    def preset(cls, name: str, **overrides) -> "FaceDetector":
        """A detector with the named settings of PRESETS ("original": the defaults;
        "widerface": the highest WIDER FACE AP found on wider_val_dev, see
        benchmarks/accuracy.md), any keyword argument of FaceDetector overriding them."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **overrides})

    @overload
    def detect(self, frames: Union[List[Any], Tuple[Any, ...]], *, bgr: bool = ...) -> List[Detections]: ...

    @overload
    def detect(self, frames: Union[np.ndarray, torch.Tensor], *, bgr: bool = ...) -> Detections: ...

    def detect(self, frames: Any, *, bgr: bool = False) -> Union[Detections, List[Detections]]:
        """Detects faces in one frame or in a list of frames.

        frames: an H x W x 3 uint8 numpy array, RGB (or BGR, OpenCV's order, with bgr=True);
            also grayscale, RGBA and torch tensors (see the README, "Inputs"). A batch is a list
            or tuple of frames of any sizes, or an N x H x W x C array or tensor.
        Returns a Detections for one frame, a list of them (one per frame, each exactly what
        that frame gives alone) for a batch. Every frame of a batch is checked before any is
        detected; R-Net and O-Net then run once per stage over the windows of up to
        BATCH_FRAMES frames together. Coordinates are 0-based pixel coordinates in the frame of
        the WIDER FACE annotations, the original networks' outputs unchanged.

        Typing: a list or tuple is annotated as giving List[Detections], an array or tensor as
        giving Detections. An N x H x W x C array or tensor is a batch at run time (a list comes
        back) but is typed as one frame: annotate it yourself, or pass list(batch).
        """
        if is_batch(frames):
            imgs = as_frame_list(frames, bgr)
            out: List[Detections] = []
            for i in range(0, len(imgs), BATCH_FRAMES):
                out.extend(self._detect_many(imgs[i : i + BATCH_FRAMES]))
            return out
        return self._detect_many([as_rgb_frame(frames, bgr)])[0]

    def stream(self, source: Any, *, bgr: bool = False, track: Integer = 0) -> Iterator[Tuple[np.ndarray, Detections]]:
        """Detects faces frame by frame, yielding (frame, Detections) pairs as they come.

        source: whatever cv2.VideoCapture opens -- a video file (str or Path), a camera index
        (int), a URL (rtsp://, http://, ...), a GStreamer pipeline or an image-sequence pattern
        such as "frames/%04d.png" -- or an open cv2.VideoCapture (read from, and left open: it is
        the caller's), or any other iterable of frames. Frames decoded by OpenCV come out RGB;
        bgr=True says that the frames of an iterable are in BGR order, and is a ValueError for a
        decoded source (OpenCV's frames are converted to RGB already). A source that cannot be
        opened is a ValueError here, before the first frame.

        track=K (K >= 1) turns on tracking: between full detections, a frame skips P-Net and
        only re-checks the previous frame's faces with R-Net and O-Net (their boxes squared, as
        P-Net's windows would be). A full detection runs on the first frame, after K tracked
        frames, and whenever tracking keeps fewer faces than the previous frame had. New faces
        therefore appear up to K frames late; benchmarks/tracking.py measures the trade."""
        from .video import decodes, frames_from

        try:
            every = as_int("track", track)
        except TypeError:
            raise ValueError(f"track must be an integer >= 0, got {track!r}") from None
        if every < 0:
            raise ValueError(f"track must be an integer >= 0, got {track!r}")
        if bgr and decodes(source):
            raise ValueError(
                "bgr=True applies to frames you pass in; the frames OpenCV decodes from a video "
                "file, camera, URL or VideoCapture are converted to RGB already (drop bgr=True)")
        return self._stream(frames_from(source), bgr, every)

    def _stream(self, frames: Iterator[Any], bgr: bool, track: int) -> Iterator[Tuple[np.ndarray, Detections]]:
        previous, tracked = None, 0
        for frame in frames:
            img = as_rgb_frame(frame, bgr)
            faces = None
            if track and previous is not None and len(previous) and tracked < track:
                faces = self._track(img, previous)
                tracked += 1
                if len(faces) < len(previous):
                    faces = None
            if faces is None:
                faces, tracked = self._detect_many([img])[0], 0
            previous = faces
            yield frame, faces

    def _track(self, img: np.ndarray, previous: Detections) -> Detections:
        """R-Net and O-Net on the previous frame's faces, without P-Net."""
        boxes = self._ops.square(np.ascontiguousarray(previous.boxes, np.float32))
        boxes = self.refine(img, boxes)
        return self.output(img, boxes) if len(boxes) else Detections.empty()

    # The cascade. A frame alone is a batch of one: there is one code path, so a batch gives
    # exactly what its frames give alone (see _run on why the rows do not depend on the batch).
    def _detect_many(self, imgs: Sequence[np.ndarray]) -> List[Detections]:
        if not self.flip:
            found = self._cascade(imgs)
        else:
            # The mirror images run in the same batch; each frame's two results merge on their own.
            mirrored = [np.ascontiguousarray(img[:, ::-1]) for img in imgs]
            both = self._cascade(list(imgs) + mirrored)
            n = len(imgs)
            found = [_vote(both[i], _mirror(both[n + i], img.shape[1])) for i, img in enumerate(imgs)]
        self._release_memory(imgs)
        return found

    def _release_memory(self, imgs: Sequence[np.ndarray]) -> None:
        """trim_memory: after frames of new sizes, the C heap's free pages go back to the
        system. Every new size allocates buffers (pyramid levels, activations) of new sizes, and
        the heap's holes left by the last ones are rarely the right size: kept, they add up
        without end; a stream of one size reuses its own (see _malloc on the price)."""
        sizes = tuple(img.shape[:2] for img in imgs)
        if self.trim_memory and sizes != self._last_sizes:
            _malloc.release_free_memory()
        self._last_sizes = sizes

    def _scratch(self, values: int) -> Optional[np.ndarray]:
        """This thread's scratch buffer with room for `values` float32 values (grown to a
        multiple of 1 MB when it has less), or None when they exceed SCRATCH_BYTES. What was
        written there before is given up: a caller's pyramid levels or crops live only until
        its next call."""
        if values * 4 > SCRATCH_BYTES:
            return None
        held = getattr(self._held, "buffer", None)
        if held is None or held.size < values:
            step = (1 << 20) // 4
            held = np.empty(-(-values // step) * step, np.float32)
            self._held.buffer = held
        return held

    def _cascade(self, imgs: Sequence[np.ndarray]) -> List[Detections]:
        boxes = [self.propose(img) for img in imgs]
        outs = self._run_windows(self.rnet, imgs, boxes, RNET_SIZE)
        boxes = [self._refined(b, o) for b, o in zip(boxes, outs)]
        outs = self._run_windows(self.onet, imgs, boxes, ONET_SIZE)
        return [self._outputs(b, o) for b, o in zip(boxes, outs)]

    def _run(self, net, batch: np.ndarray, chunk_rows: int = 0):
        """Runs a network on an (N, H, W, 3) float32 batch. The core writes that interleaved
        layout, which torch sees without a copy as an NCHW tensor in channels-last memory
        format, the one its CPU kernels (max pooling above all) run fastest in.

        chunk_rows (R-Net and O-Net): the first blocks (net.features), whose activations are
        large, run in chunks of at most that many rows, and the rest (net.head: the last
        convolution and the fully connected layers, a few KB per window) once over all the rows,
        which pays its layers' fixed costs and weight reorders (O-Net's fc5: 1.2 MB) once
        instead of once per chunk. Each window's outputs are the same bits whichever batch,
        chunk or position it comes in (every layer is a oneDNN convolution on the CPU:
        nets.OneDNNConv2d, nets.OneDNNLinear), so a batch of frames gives exactly what each
        frame gives alone."""
        with torch.inference_mode():
            if not chunk_rows:
                return self._numpy(net(self._tensor(net, batch)))
            # One chunk at least: an empty batch gives empty outputs of the right shapes.
            feats = [net.features(self._tensor(net, batch[i : i + chunk_rows]))
                     for i in range(0, max(len(batch), 1), chunk_rows)]
            return self._numpy(net.head(feats[0] if len(feats) == 1 else torch.cat(feats)))

    def _tensor(self, net, batch: np.ndarray) -> torch.Tensor:
        # The input in the dtype of the network's role (precision), float32 for any other module.
        dtype = next((self._dtypes[name] for name in NETWORKS if getattr(self, name) is net), torch.float32)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device, dtype)

    @staticmethod
    def _numpy(outs) -> List[np.ndarray]:
        return [o.float().cpu().numpy() for o in outs]

    def _run_windows(self, net, imgs, boxes, size: int):
        """`net` over the size x size crops of every frame's windows, in chunks of
        CHUNK_ROWS[size] windows that run across frames; the outputs split back per frame (None
        for a frame without windows). Crops are cut for up to CROP_BYTES of windows at a time
        (every window of a photo at the default settings in one cut), so a flood of windows (a
        P-Net threshold near 0: 10^5 windows on a 1920x1080 frame) needs that much memory for
        its crops, not all of them at once. Each cut builds a summed-area table of the region
        its windows cover, and where that region starts enters the crops' last bits; so a
        frame's windows are cut in groups counted from its own first window, never together
        with another frame's, and a frame gives the same crops alone and in any batch."""
        threads = torch.get_num_threads()
        counts = [len(b) for b in boxes]
        if not sum(counts):
            return [None] * len(imgs)
        rows = (CHUNK_ROWS if self.device.type == "cpu" else CUDA_CHUNK_ROWS)[size]
        group = max(1, CROP_BYTES // (size * size * 3 * 4 * rows)) * rows
        per_window = size * size * 3
        scratch = self._scratch(min(sum(counts), group) * per_window)
        parts: List[list] = []
        pending: List[np.ndarray] = []

        def run_pending() -> None:
            if len(pending) == 1:
                batch = pending[0]
            elif scratch is not None:  # the cuts lie one after the other at its start
                batch = scratch[: sum(map(len, pending)) * per_window].reshape(-1, size, size, 3)
            else:
                batch = np.concatenate(pending)
            parts.append(self._run(net, batch, rows))
            pending.clear()

        for img, b in zip(imgs, boxes):
            for first in range(0, len(b), group):
                cut = b[first : first + group]
                if pending and sum(map(len, pending)) + len(cut) > group:
                    run_pending()
                out = None if scratch is None else scratch[sum(map(len, pending)) * per_window :]
                pending.append(self._ops.crop_windows(img, cut, size, threads, out=out))
        run_pending()
        outs = parts[0] if len(parts) == 1 else [np.concatenate(col) for col in zip(*parts)]
        ends = np.cumsum(counts)
        return [[o[e - n : e] for o in outs] if n else None for n, e in zip(counts, ends)]

    def propose(self, img: np.ndarray) -> np.ndarray:
        """P-Net over the pyramid: squared, truncated candidate windows (K, 4). P-Net runs one
        frame at a time, even in a batch: stacking frames changes its results in the last bits
        (measured on the CPU), and batch results must be those of frames alone."""
        ops = self._ops
        h, w = img.shape[:2]
        scales = ops.pyramid_scales(h, w, self.min_face_size, self.scale_factor)
        out = self._scratch(ops.pyramid_values(h, w, scales))
        levels = ops.pyramid(img, scales, torch.get_num_threads(), out=out)
        found_boxes, found_scores, found_reg = [], [], []
        for scale, level in zip(scales, levels):
            # Each band's windows, in row order: together the whole level's.
            bands = [ops.generate_windows(prob, reg, scale, self.thresholds[0], first_row=row)
                     for row, prob, reg in self._pnet(level)]
            windows = bands[0] if len(bands) == 1 else [np.concatenate(part) for part in zip(*bands)]
            boxes, scores, offsets = finite_rows(*windows)
            keep = ops.nms(boxes, scores, self.nms_thresholds[0], "union")
            found_boxes.append(boxes[keep])
            found_scores.append(scores[keep])
            found_reg.append(offsets[keep])
        if not found_boxes:
            return np.zeros((0, 4), np.float32)
        boxes = np.concatenate(found_boxes)
        scores = np.concatenate(found_scores)
        offsets = np.concatenate(found_reg)
        keep = ops.nms(boxes, scores, self.nms_thresholds[1], "union")
        boxes = ops.calibrate(boxes[keep], offsets[keep], False)
        return ops.square(boxes)

    def _pnet(self, level: np.ndarray) -> List[Tuple[int, np.ndarray, np.ndarray]]:
        """P-Net over one (H, W, 3) level, as bands of its output rows: (first row, face
        probabilities (rows, W'), box offsets (4, rows, W')) each, the whole level's H' rows in
        order. On the CPU a level whose first activation (10 channels of (H - 2) x (W - 2)) would
        exceed ACTIVATION_BYTES runs in bands: output rows [a, b) need input rows
        [2a, 2b + 10), so the bands overlap by 10 input rows and the max pooling's windows stay
        aligned (they start on even rows); the last band ends with the level, whose pooling
        rounds up as the whole level's does. The band height (a multiple of PNET_BAND_ROWS)
        depends only on the level's width (see PNET_BAND_ROWS on the numbers). The bands' maps
        are not joined (a copy of every offset: about 0.8 ms per WIDER photo); the windows of
        each band are placed by its first row (generate_windows)."""
        h, w = level.shape[:2]
        out_rows = (h - 1) // 2 - 4  # conv 3x3, pool 2x2 (ceil), conv 3x3, conv 3x3
        per_row = 80 * (w - 2)  # 2 rows of the first activation, 10 channels of 4 bytes
        band = max(1, ACTIVATION_BYTES // per_row // PNET_BAND_ROWS) * PNET_BAND_ROWS
        if self.device.type != "cpu" or band >= out_rows:
            prob, reg = self._run(self.pnet, level[None])
            return [(0, prob[0], reg[0])]
        bands = []
        for a in range(0, out_rows, band):
            b = min(a + band, out_rows)
            prob, reg = self._run(self.pnet, level[None, 2 * a : h if b == out_rows else 2 * b + 10])
            bands.append((a, prob[0], reg[0]))
        return bands

    def refine(self, img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """R-Net on 24x24 crops: the windows that pass, regressed, squared and truncated."""
        return self._refined(boxes, self._run_windows(self.rnet, [img], [boxes], RNET_SIZE)[0])

    def output(self, img: np.ndarray, boxes: np.ndarray) -> Detections:
        """O-Net on 48x48 crops: final scores, regressed boxes and landmarks."""
        return self._outputs(boxes, self._run_windows(self.onet, [img], [boxes], ONET_SIZE)[0])

    def _refined(self, boxes: np.ndarray, outs) -> np.ndarray:
        if outs is None:
            return np.zeros((0, 4), np.float32)
        ops = self._ops
        prob, reg = outs
        passed = prob > np.float32(self.thresholds[1])
        boxes, scores, reg = finite_rows(boxes[passed], prob[passed], reg[passed])
        keep = ops.nms(boxes, scores, self.nms_thresholds[2], "union")
        return ops.square(ops.calibrate(boxes[keep], reg[keep], True))

    def _outputs(self, boxes: np.ndarray, outs) -> Detections:
        if outs is None:
            return Detections.empty()
        ops = self._ops
        prob, reg, points = outs
        passed = prob > np.float32(self.thresholds[2])
        boxes, scores, reg, points = finite_rows(boxes[passed], prob[passed], reg[passed], points[passed])
        one = np.float32(1.0)
        # Landmarks come from the O-Net input window, before its regression.
        w = (boxes[:, 2] - boxes[:, 0] + one)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + one)[:, None]
        xs = boxes[:, 0:1] + w * points[:, 0:5] - one
        ys = boxes[:, 1:2] + h * points[:, 5:10] - one
        landmarks = np.stack([xs, ys], axis=2)
        boxes = ops.calibrate(boxes, reg, True)
        keep = ops.nms(boxes, scores, self.nms_thresholds[3], "min")
        return Detections(
            np.ascontiguousarray(boxes[keep], dtype=np.float32),
            np.ascontiguousarray(scores[keep], dtype=np.float32),
            np.ascontiguousarray(landmarks[keep], dtype=np.float32),
        )
