"""The whole recipe, end to end, from one small TOML config:

1. P-Net on random windows of the training photos (plus landmark faces);
2. R-Net on the windows that the trained P-Net proposes on the training photos;
3. O-Net on the windows that P-Net followed by R-Net keep;
each stage exported to OUT/weights/<stage>.npz, the folder FaceDetector(weights=...) loads.

Every step is resumable: sample sets are saved once made (OUT/samples/<stage>.npz), training
resumes from its checkpoint (OUT/checkpoints/), and a stage whose weights are exported is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from mtcnn_fast._progress import Progress

from .data import (
    load_celeba,
    load_landmarks_jsonl,
    load_wider_jsonl,
    load_wider_official,
    split_landmark_faces,
)
from .loop import TrainConfig, read_log, train_stage
from .model import export, init_weights_dir
from .samples import (
    INPUT_SIZE,
    SampleSet,
    cascade_samples,
    landmark_samples,
    random_samples,
)

STAGES = ("pnet", "rnet", "onet")

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = None


def load_config(path) -> Dict:
    path = Path(path)
    if tomllib is None:
        raise RuntimeError("reading the TOML config needs Python 3.11 or later (tomllib)")
    cfg = tomllib.loads(path.read_text())
    base = path.parent
    for key in ("root", "gt_txt", "images", "file", "bbox_txt"):
        for section in ("faces", "landmarks"):
            value = cfg.get(section, {}).get(key)
            if value is not None and not Path(value).is_absolute():
                cfg[section][key] = str((base / value).resolve())
    return cfg


def read_faces(cfg: Dict):
    faces = cfg.get("faces", {})
    layout = faces.get("layout", "jsonl")
    if layout == "jsonl":
        items = load_wider_jsonl(faces["root"])
    elif layout == "official":
        items = load_wider_official(faces["gt_txt"], faces["images"])
    else:
        raise ValueError(f"faces.layout must be 'jsonl' or 'official', got {layout!r}")
    limit = int(faces.get("limit", 0))
    return items[:limit] if limit else items


def read_landmark_faces(cfg: Dict):
    lm = cfg.get("landmarks")
    if not lm:
        return [], 0
    layout = lm.get("layout", "jsonl")
    if layout == "jsonl":
        items = load_landmarks_jsonl(lm["file"], lm.get("root"))
    elif layout == "celeba":
        items = load_celeba(lm["file"], lm["images"], lm.get("bbox_txt"))
    else:
        raise ValueError(f"landmarks.layout must be 'jsonl' or 'celeba', got {layout!r}")
    items, dropped = split_landmark_faces(items, bool(lm.get("drop_noisy", False)))
    limit = int(lm.get("limit", 0))
    return (items[:limit] if limit else items), dropped


def _detector(weights_dir, cfg: Dict, device: str):
    from mtcnn_fast import FaceDetector

    mining = cfg.get("mining", {})
    return FaceDetector(weights=weights_dir, device=device, min_face_size=float(mining.get("min_face_size", 20.0)),
                        thresholds=tuple(mining.get("thresholds", (0.6, 0.7, 0.7))))


def make_samples(stage: str, cfg: Dict, weights_dir: Path, device: str, show: bool, report: Dict) -> SampleSet:
    size = INPUT_SIZE[stage]
    sc = cfg.get(stage, {}).get("samples", {})
    rng = np.random.default_rng(int(cfg.get("seed", 0)) * 1000 + STAGES.index(stage))
    faces = read_faces(cfg)
    if stage == "pnet":
        face_set = random_samples(faces, size, rng, negatives=int(sc.get("negatives", 50)),
                                  near_per_face=int(sc.get("near_per_face", 20)),
                                  progress=Progress(len(faces), "pnet samples", enabled=show))
    else:
        det = _detector(weights_dir, cfg, device)
        if stage == "rnet":
            windows_of = det.propose
        else:
            def windows_of(img):
                boxes = det.propose(img)
                return det.refine(img, boxes) if len(boxes) else boxes
        mined = cascade_samples(faces, size, windows_of, rng, max_negatives=int(sc.get("max_negatives", 60)),
                                progress=Progress(len(faces), f"{stage} samples (mining)", enabled=show))
        # The cascade yields few positives and part faces (and, early in a run, few windows at
        # all): windows around the annotated faces add to them, as for P-Net.
        extra = random_samples(faces, size, rng, negatives=int(sc.get("negatives", 10)),
                               near_per_face=int(sc.get("near_per_face", 5)),
                               progress=Progress(len(faces), f"{stage} samples (around faces)", enabled=show))
        report["mined"], report["around_faces"] = mined.counts(), extra.counts()
        face_set = SampleSet.concat([mined, extra], size)
    lm_faces, dropped = read_landmark_faces(cfg)
    prior = cfg.get("landmarks", {}).get("box_prior")
    lm_set = landmark_samples(lm_faces, size, rng, per_face=int(sc.get("landmarks_per_face", 10)),
                              prior=None if prior is None else tuple(prior),
                              progress=Progress(len(lm_faces), f"{stage} landmark samples", enabled=show))
    report["landmark_faces"], report["landmark_faces_dropped"] = len(lm_faces), dropped
    return SampleSet.concat([face_set, lm_set], size)


def run(cfg: Dict, out_dir, stages: Sequence[str] = STAGES, device: str = "cpu",
        progress: Optional[bool] = None) -> Dict:
    """Runs the recipe; returns a report (sample counts, seconds per part, final losses), which
    is also written to OUT/report.json."""
    out = Path(out_dir)
    weights_dir, samples_dir, ckpt_dir = out / "weights", out / "samples", out / "checkpoints"
    for d in (weights_dir, samples_dir, ckpt_dir):
        d.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    init_weights_dir(weights_dir, int(cfg.get("seed", 0)))
    for stage in stages:
        if stage not in STAGES:
            raise ValueError(f"stages must come from {STAGES}, got {stage!r}")
        done = ckpt_dir / f"{stage}.exported"
        if done.is_file():
            continue
        rep = report.setdefault(stage, {})
        sample_path = samples_dir / f"{stage}.npz"
        t0 = time.perf_counter()
        if sample_path.is_file():
            samples = SampleSet.load(sample_path)
        else:
            samples = make_samples(stage, cfg, weights_dir, device, show, rep)
            tmp = samples_dir / f"{stage}.tmp.npz"
            samples.save(tmp)
            tmp.replace(sample_path)
            rep["sample_seconds"] = round(time.perf_counter() - t0, 1)
        rep["samples"] = samples.counts()
        tcfg = TrainConfig.from_dict(dict(cfg.get(stage, {}).get("train", {})))
        t0 = time.perf_counter()
        model = train_stage(stage, samples, tcfg, ckpt_dir, device=device, progress=show)
        rep["train_seconds"] = round(rep.get("train_seconds", 0.0) + time.perf_counter() - t0, 1)
        log = read_log(ckpt_dir, stage)
        rep["first_losses"], rep["last_losses"] = (log[0], log[-1]) if log else (None, None)
        export(model, weights_dir)
        done.write_text("exported\n")
        report_path.write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="TOML settings (see training/configs/)")
    p.add_argument("--out", help="output folder (default: the config's `out`)")
    p.add_argument("--stages", default="pnet,rnet,onet", help="comma-separated stages to run (all)")
    p.add_argument("--device", help="cpu or cuda (default: the config's `device`, else cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    out = args.out or cfg.get("out")
    if not out:
        p.error("no output folder: give --out or set `out` in the config")
    report = run(cfg, out, [s.strip() for s in args.stages.split(",") if s.strip()],
                 args.device or cfg.get("device", "cpu"), progress=False if args.quiet else None)
    print(json.dumps(report, indent=1))
    return 0
