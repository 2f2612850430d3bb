#!/usr/bin/env bash
# Reproduces every figure of benchmarks/accuracy.md. Needs ../shared/data, the project venv
# (bash .ci/run) and, for the peer rows, facenet-pytorch's venv (benchmarks/peers/facenet_pytorch.py
# says how to make it). Predictions land in benchmarks/results/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=../shared/data
OUT=benchmarks/results
PEER=${FACENET_PYTHON:-/work/peers/facenet/bin/python}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1

for m in 20 10; do
  .venv/bin/mtcnn-fast eval widerface --root $DATA/wider_val_dev --min-face-size $m --device cpu \
    --overwrite --save-predictions $OUT/mtcnn_fast_wider_min$m.jsonl --plot-dir $OUT/plots_min$m
  if [ -x "$PEER" ]; then
    "$PEER" benchmarks/peers/facenet_pytorch.py widerface --root $DATA/wider_val_dev \
      --min-face-size $m --out $OUT/facenet_wider_min$m.jsonl
    .venv/bin/mtcnn-fast eval widerface --root $DATA/wider_val_dev --predictions $OUT/facenet_wider_min$m.jsonl
  fi
done

.venv/bin/mtcnn-fast eval landmarks --file $DATA/landmarks_5pt/test.jsonl --device cpu \
  --overwrite --save-predictions $OUT/mtcnn_fast_landmarks.jsonl
if [ -x "$PEER" ]; then
  "$PEER" benchmarks/peers/facenet_pytorch.py landmarks --file $DATA/landmarks_5pt/test.jsonl \
    --out $OUT/facenet_landmarks.jsonl
  .venv/bin/mtcnn-fast eval landmarks --file $DATA/landmarks_5pt/test.jsonl --predictions $OUT/facenet_landmarks.jsonl
fi

# Landmark offsets on AFLW (test) and on an LFW subset of train.jsonl, both detectors.
.venv/bin/python benchmarks/landmark_offsets.py subset --file $DATA/landmarks_5pt/train.jsonl \
  --out $OUT/lfw/subset.jsonl --limit 1500
.venv/bin/mtcnn-fast eval landmarks --file $OUT/lfw/subset.jsonl --device cpu --quiet \
  --overwrite --save-predictions $OUT/lfw/mtcnn_fast.jsonl > /dev/null
LFW_PRED=$OUT/lfw/mtcnn_fast.jsonl
TEST_PRED=$OUT/mtcnn_fast_landmarks.jsonl
if [ -x "$PEER" ]; then
  "$PEER" benchmarks/peers/facenet_pytorch.py landmarks --file $OUT/lfw/subset.jsonl --out $OUT/lfw/facenet.jsonl
  LFW_PRED="$LFW_PRED $OUT/lfw/facenet.jsonl"
  TEST_PRED="$TEST_PRED $OUT/facenet_landmarks.jsonl"
fi
.venv/bin/python benchmarks/landmark_offsets.py score --file $DATA/landmarks_5pt/test.jsonl --predictions $TEST_PRED \
  --shift 0.5 0.5
.venv/bin/python benchmarks/landmark_offsets.py score --file $OUT/lfw/subset.jsonl --predictions $LFW_PRED \
  --shift 0.5 0.5

# The WIDER FACE preset (FaceDetector.preset("widerface")): every idea on its own and together,
# then the table of accuracy.md, CPU time per photo, and the preset's landmarks on both sets.
rm -f $OUT/preset_search.jsonl $OUT/preset_timing.jsonl
.venv/bin/python benchmarks/preset_search.py --threads 2
.venv/bin/python benchmarks/preset_search.py --timing 30 --threads 2
.venv/bin/python benchmarks/preset_search.py --table
.venv/bin/mtcnn-fast eval landmarks --file $DATA/landmarks_5pt/test.jsonl --device cpu --preset widerface \
  --quiet --overwrite --save-predictions $OUT/preset_landmarks.jsonl > /dev/null
.venv/bin/mtcnn-fast eval landmarks --file $OUT/lfw/subset.jsonl --device cpu --preset widerface --quiet \
  --overwrite --save-predictions $OUT/lfw/preset.jsonl > /dev/null
.venv/bin/python benchmarks/landmark_offsets.py score --file $DATA/landmarks_5pt/test.jsonl \
  --predictions $OUT/mtcnn_fast_landmarks.jsonl $OUT/preset_landmarks.jsonl
.venv/bin/python benchmarks/landmark_offsets.py score --file $OUT/lfw/subset.jsonl \
  --predictions $OUT/lfw/mtcnn_fast.jsonl $OUT/lfw/preset.jsonl

# Reduced precision (bfloat16 on this CPU), against the float32 rows above.
.venv/bin/mtcnn-fast eval widerface --root $DATA/wider_val_dev --device cpu --precision bfloat16
.venv/bin/mtcnn-fast eval landmarks --file $DATA/landmarks_5pt/test.jsonl --device cpu --precision bfloat16

# The weights reproduced by training/ (training/README.md), next to the original ones.
.venv/bin/mtcnn-fast eval widerface --root $DATA/wider_val_dev --device cpu --weights training/weights
.venv/bin/mtcnn-fast eval landmarks --file $DATA/landmarks_5pt/test.jsonl --device cpu --weights training/weights
