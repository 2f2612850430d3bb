"""An independent, deliberately plain implementation of the original MTCNN pipeline
(../shared/REFERENCE.md), written straight from the MATLAB v1 description and sharing no
code with mtcnn_fast's pipeline or ops: OpenCV's float resize (INTER_AREA when an image or
crop shrinks on both axes, INTER_LINEAR otherwise: the kernel mtcnn-fast follows), float64 boxes,
crops materialised as zero-filled arrays, the networks as torch.nn.functional calls on the
shipped weight arrays. Used to check that the fast pipeline agrees with the specification.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# The weight files of the installed package (the source tree's when installed from it; the
# wheel's when the tests run from a copy against a wheel). Only the .npz files are read here.
WEIGHTS = Path(str(resources.files("mtcnn_fast") / "weights"))


def _load(name):
    with np.load(WEIGHTS / f"{name}.npz") as z:
        return {k: torch.from_numpy(z[k].copy()) for k in z.files}


class Nets:
    def __init__(self):
        self.p, self.r, self.o = _load("pnet"), _load("rnet"), _load("onet")

    @staticmethod
    def _conv(x, w, layer, pool=None):
        x = F.conv2d(x, w[f"conv{layer}.weight"], w[f"conv{layer}.bias"])
        x = F.prelu(x, w[f"prelu{layer}.weight"])
        if pool:
            x = F.max_pool2d(x, pool[0], pool[1], ceil_mode=True)
        return x

    def pnet(self, x):
        w = self.p
        x = self._conv(x, w, 1, (2, 2))
        x = self._conv(x, w, 2)
        x = self._conv(x, w, 3)
        prob = F.softmax(F.conv2d(x, w["conv4_1.weight"], w["conv4_1.bias"]), dim=1)
        return prob[0, 1].numpy(), F.conv2d(x, w["conv4_2.weight"], w["conv4_2.bias"])[0].numpy()

    def rnet(self, x):
        w = self.r
        x = self._conv(x, w, 1, (3, 2))
        x = self._conv(x, w, 2, (3, 2))
        x = self._conv(x, w, 3)
        x = F.prelu(F.linear(x.reshape(x.shape[0], -1), w["fc4.weight"], w["fc4.bias"]), w["prelu4.weight"])
        prob = F.softmax(F.linear(x, w["fc5_1.weight"], w["fc5_1.bias"]), dim=1)[:, 1]
        return prob.numpy(), F.linear(x, w["fc5_2.weight"], w["fc5_2.bias"]).numpy()

    def onet(self, x):
        w = self.o
        x = self._conv(x, w, 1, (3, 2))
        x = self._conv(x, w, 2, (3, 2))
        x = self._conv(x, w, 3, (2, 2))
        x = self._conv(x, w, 4)
        x = F.prelu(F.linear(x.reshape(x.shape[0], -1), w["fc5.weight"], w["fc5.bias"]), w["prelu5.weight"])
        prob = F.softmax(F.linear(x, w["fc6_1.weight"], w["fc6_1.bias"]), dim=1)[:, 1]
        reg = F.linear(x, w["fc6_2.weight"], w["fc6_2.bias"])
        pts = F.linear(x, w["fc6_3.weight"], w["fc6_3.bias"])
        return prob.numpy(), reg.numpy(), pts.numpy()


def _norm(a):
    return (a - 127.5) * 0.0078125


def _nms(boxes, scores, thr, kind):
    if len(boxes) == 0:
        return np.zeros(0, int)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    pick = []
    while len(order):
        i, rest = order[0], order[1:]
        pick.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        den = np.minimum(area[i], area[rest]) if kind == "min" else area[i] + area[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            over = (den > 0) & (inter / den > thr)
        order = rest[~over]
    return np.array(pick, int)


def _bbreg(boxes, reg, plus):
    w = boxes[:, 2] - boxes[:, 0] + plus
    h = boxes[:, 3] - boxes[:, 1] + plus
    return boxes[:, :4] + reg * np.stack([w, h, w, h], 1)


def _rerec(b):
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    l = np.maximum(w, h)
    x1 = b[:, 0] + w * 0.5 - l * 0.5
    y1 = b[:, 1] + h * 0.5 - l * 0.5
    return np.fix(np.stack([x1, y1, x1 + l, y1 + l], 1))


def _resize(img, w, h):
    """Area averaging when neither side grows, bilinear otherwise."""
    shrink = w <= img.shape[1] and h <= img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _crops(img, boxes, size):
    H, W = img.shape[:2]
    out = np.zeros((len(boxes), 3, size, size), np.float32)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        tw, th = x2 - x1 + 1, y2 - y1 + 1
        tmp = np.zeros((th, tw, 3), np.float32)
        sx, sy = max(x1, 1), max(y1, 1)
        ex, ey = min(x2, W), min(y2, H)
        if ex >= sx and ey >= sy:
            tmp[sy - y1 : ey - y1 + 1, sx - x1 : ex - x1 + 1] = img[sy - 1 : ey, sx - 1 : ex]
        r = _resize(tmp, size, size)
        out[k] = _norm(r).transpose(2, 0, 1)
    return torch.from_numpy(out)


def detect(nets, img, minsize=20, thresholds=(0.6, 0.7, 0.7), factor=0.709):
    """img: RGB uint8. Returns boxes (N, 4), scores (N,), landmarks (N, 5, 2)."""
    h, w = img.shape[:2]
    imgf = img.astype(np.float32)
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales = []
    k = 0
    while minl >= 12:
        scales.append(m * factor**k)
        minl *= factor
        k += 1
    total = []
    with torch.no_grad():
        for s in scales:
            hs, ws = math.ceil(h * s), math.ceil(w * s)
            lvl = _norm(_resize(imgf, ws, hs))
            prob, reg = nets.pnet(torch.from_numpy(lvl.transpose(2, 0, 1).copy())[None])
            ys, xs = np.nonzero(prob >= thresholds[0])
            if len(ys) == 0:
                continue
            b = np.stack([np.fix((2 * xs + 1) / s), np.fix((2 * ys + 1) / s),
                          np.fix((2 * xs + 12) / s), np.fix((2 * ys + 12) / s)], 1).astype(np.float64)
            sc = prob[ys, xs].astype(np.float64)
            rg = reg[:, ys, xs].T.astype(np.float64)
            p = _nms(b, sc, 0.5, "union")
            total.append(np.concatenate([b[p], sc[p, None], rg[p]], 1))
        empty = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))
        if not total:
            return empty
        t = np.concatenate(total)
        t = t[_nms(t[:, :4], t[:, 4], 0.7, "union")]
        boxes = _rerec(_bbreg(t[:, :4], t[:, 5:9], 0.0))

        prob, reg = nets.rnet(_crops(img, boxes, 24))
        ok = prob > thresholds[1]
        boxes, sc, reg = boxes[ok], prob[ok].astype(np.float64), reg[ok].astype(np.float64)
        if len(boxes) == 0:
            return empty
        p = _nms(boxes, sc, 0.7, "union")
        boxes = _rerec(_bbreg(boxes[p], reg[p], 1.0))

        prob, reg, pts = nets.onet(_crops(img, boxes, 48))
        ok = prob > thresholds[2]
        boxes, sc, reg, pts = boxes[ok], prob[ok].astype(np.float64), reg[ok], pts[ok]
        if len(boxes) == 0:
            return empty
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        lx = boxes[:, :1] + bw[:, None] * pts[:, :5] - 1
        ly = boxes[:, 1:2] + bh[:, None] * pts[:, 5:] - 1
        boxes = _bbreg(boxes, reg.astype(np.float64), 1.0)
        p = _nms(boxes, sc, 0.7, "min")
        return boxes[p], sc[p], np.stack([lx, ly], 2)[p]
