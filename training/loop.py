"""One stage's training: mini-batches mixed 3:1:1:2 (negative, positive, part, landmark), the
multi-task loss with online hard sample mining, Adam, checkpoints and resuming, a progress line
with the running losses, and a JSON-lines log of them."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .losses import OHEM_KEEP, STAGE_WEIGHTS, multitask_loss
from .model import TrainNet
from .samples import _MEAN, _SCALE, KIND_NAMES, SampleSet, mix_counts


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 448
    lr: float = 1e-3
    weight_decay: float = 5e-4
    lr_drops: Sequence[float] = (0.6, 0.85)  # fractions of the run where the rate falls 10x
    ratio: Sequence[int] = (3, 1, 1, 2)
    ohem_keep: float = OHEM_KEEP
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    threads: int = 0  # torch CPU threads, 0: torch's default

    @staticmethod
    def from_dict(d: Dict) -> "TrainConfig":
        known = set(TrainConfig.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        return TrainConfig(**d)


class MixedBatches:
    """Batches drawn in a fixed kind ratio. Batch t is a function of (seed, t) only, so a resumed
    run sees exactly the batches an uninterrupted one would. A kind missing from the set gives its
    share to the others (in ratio order), and a set lacking both negatives and positives is refused."""

    def __init__(self, samples: SampleSet, batch_size: int, ratio: Sequence[int], seed: int) -> None:
        self.by_kind = [np.flatnonzero(samples.kind == k) for k in range(len(KIND_NAMES))]
        if not len(self.by_kind[0]) or not len(self.by_kind[1]):
            raise ValueError(f"training needs negatives and positives, got {samples.counts()}")
        ratio = [r if len(ix) else 0 for r, ix in zip(ratio, self.by_kind)]
        self.counts = mix_counts(batch_size, ratio) if sum(ratio) else None
        self.seed = seed

    def indices(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, step])
        return np.concatenate([rng.choice(ix, n) for ix, n in zip(self.by_kind, self.counts) if n])


def to_tensor(images: np.ndarray, device) -> torch.Tensor:
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return (x - float(_MEAN)) * float(_SCALE)


def _lr_at(cfg: TrainConfig, step: int) -> float:
    return cfg.lr * 0.1 ** sum(step >= f * cfg.steps for f in cfg.lr_drops)


def train_stage(stage: str, samples: SampleSet, cfg: TrainConfig, work_dir, device="cpu",
                progress: Optional[bool] = None, stop_after: Optional[int] = None) -> TrainNet:
    """Trains one network and returns it. Checkpoints go to work_dir/<stage>.ckpt (every
    cfg.checkpoint_every steps and at the end); a checkpoint found there is resumed from. The
    running losses are appended to work_dir/<stage>_log.jsonl. stop_after: stop (with a
    checkpoint) after that many steps of this call, for tests of resuming."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = TrainNet(stage).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path, log_path = work_dir / f"{stage}.ckpt", work_dir / f"{stage}_log.jsonl"
    step = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        # the log keeps what the checkpoint holds: records after it are redone
        kept = [r for r in read_log(work_dir, stage) if r["step"] <= step]
        log_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    elif log_path.exists():
        log_path.unlink()
    batches = MixedBatches(samples, cfg.batch_size, cfg.ratio, cfg.seed)
    weights = STAGE_WEIGHTS[stage]
    show = sys.stderr.isatty() if progress is None else progress
    running: Dict[str, List[float]] = {"det": [], "box": [], "landmark": []}
    start, last_shown, first = time.perf_counter(), 0.0, step

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, tmp)
        tmp.replace(ckpt_path)

    model.train()
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        idx = batches.indices(step)
        kind = torch.from_numpy(samples.kind[idx].astype(np.int64)).to(device)
        box = torch.from_numpy(samples.box[idx]).to(device)
        points = torch.from_numpy(samples.points[idx]).to(device)
        loss, parts = multitask_loss(model(to_tensor(samples.images[idx], device)), kind, box, points,
                                     weights, cfg.ohem_keep)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        for k, v in parts.items():
            running[k].append(v)
        if step % cfg.log_every == 0 or step == cfg.steps:
            rec = {"step": step, **{k: float(np.mean(v)) for k, v in running.items()}}
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            running = {k: [] for k in running}
        now = time.perf_counter()
        if show and (now - last_shown > 0.5 or step == cfg.steps):
            last_shown = now
            rate = (step - first) / max(now - start, 1e-9)
            sys.stderr.write(f"\r{stage} step {step}/{cfg.steps}  det {parts['det']:.4f}  box {parts['box']:.4f}  "
                             f"landmark {parts['landmark']:.4f}  {rate:.1f} steps/s")
            sys.stderr.flush()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save()
        if stop_after is not None and step - first >= stop_after:
            save()
            break
    if show:
        sys.stderr.write("\n")
    return model.eval()


def read_log(work_dir, stage: str) -> List[Dict[str, float]]:
    path = Path(work_dir) / f"{stage}_log.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.is_file() else []
