"""Command line: ``mtcnn-fast detect IMAGE... [--json] [--output PATH]``, ``mtcnn-fast demo``,
``mtcnn-fast align-dataset IN_DIR OUT_DIR`` and ``mtcnn-fast eval ...``.

No command writes over a file that exists unless given --overwrite, and none ever writes one
input's result over another's: ``detect --output FOLDER`` mirrors the input tree.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._detections import face_record
from ._input import IMAGE_SUFFIXES, read_rgb
from ._opencv import cv2


def sample_image_path() -> Path:
    """The bundled sample photo (NASA portrait of Eileen Collins, public domain)."""
    return Path(str(resources.files("mtcnn_fast") / "data" / "astronaut.png"))


def annotate(rgb: np.ndarray, faces) -> np.ndarray:
    """A BGR copy of the frame with boxes, scores and landmarks drawn on it."""
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    thick = max(1, round(max(out.shape[:2]) / 400))
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255)]
    for box, score, points in zip(faces.boxes, faces.scores, faces.landmarks):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 220, 0), thick)
        cv2.putText(out, f"{score:.2f}", (x1, max(0, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, (0, 220, 0), thick)
        for (x, y), colour in zip(points, colours):
            cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, colour, -1)
    return out


def faces_to_json(faces) -> List[dict]:
    return [face_record(*face) for face in faces]


def expand_inputs(paths: Sequence[str], exclude: Optional[Path] = None) -> List[Tuple[Path, Path]]:
    """(file, relative name) pairs: files as given (relative name: the file's name), and the
    image and video files inside any folder given (sorted, recursive; relative name: the path
    under that folder). Files under `exclude` (the output folder) are left out."""
    from .video import VIDEO_SUFFIXES

    skip = exclude.resolve() if exclude is not None else None
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
            for f in sorted(f for f in p.rglob("*") if f.suffix.lower() in wanted and f.is_file()):
                if skip is not None and skip in f.resolve().parents:
                    continue
                out.append((f, f.relative_to(p)))
        else:
            out.append((p, Path(p.name)))
    return out


SETTING_FLAGS = ("min_face_size", "thresholds", "scale_factor")


def _precision(text: str):
    """--precision: a name for every network, or NET=NAME pairs split by commas (a dict); the
    names and networks are checked where the detector is made (detector.precision_setting)."""
    if "=" not in text:
        return text
    pairs = [part.split("=") for part in text.split(",")]
    if any(len(pair) != 2 for pair in pairs) or len({net for net, _ in pairs}) != len(pairs):
        raise argparse.ArgumentTypeError(f"expected a name or NET=NAME pairs split by commas, each network "
                                         f"once (e.g. onet=bfloat16), got {text!r}")
    return {net.strip(): name.strip() for net, name in pairs}


def _settings(args) -> dict:
    """The detector settings a command line asks for: the --preset's, each flag given explicitly
    overriding it; what neither names keeps the detector's (or align_dataset's) default."""
    from .detector import PRESETS

    settings = dict(PRESETS[getattr(args, "preset", None) or "original"])
    for name in SETTING_FLAGS:
        value = getattr(args, name)
        if value is not None:
            settings[name] = tuple(value) if name == "thresholds" else value
    return settings


def _annotated_name(rel: Path, video: bool, long: bool = False) -> Path:
    """Where an input's annotated copy goes, relative to the output folder: beside its mirrored
    path, `<stem>_faces<suffix>`. Images keep their format; videos are written as .avi (MJPG) or
    else .mp4. long=True keeps the whole input name (`clip.mov_faces.mp4`), for inputs whose
    short names would clash."""
    suffix = rel.suffix.lower()
    if video:
        suffix = ".avi" if suffix == ".avi" else ".mp4"
    return rel.parent / (f"{rel.name if long else rel.stem}_faces{suffix}")


def plan_outputs(inputs: Sequence[Tuple[Path, Path]], out: Path) -> Dict[Path, Path]:
    """input file -> its annotated output under the folder `out`, the input tree mirrored. Two
    inputs never share an output: where short names clash (a.mp4 and a.mov) both keep their
    whole name; where relative paths are the same (a.jpg in two folders given) it is an error."""
    from .video import is_video

    short = {f: _annotated_name(rel, is_video(f)) for f, rel in inputs}
    count: Dict[Path, int] = {}
    for t in short.values():
        count[t] = count.get(t, 0) + 1
    plan: Dict[Path, Path] = {}
    claimed: Dict[Path, Path] = {}
    for f, rel in inputs:
        t = short[f] if count[short[f]] == 1 else _annotated_name(rel, is_video(f), long=True)
        target = out / t
        if target in claimed:
            raise ValueError(f"{claimed[target]} and {f} would both be written to {target}: "
                             f"give them separate runs with separate --output folders")
        claimed[target] = f
        plan[f] = target
    return plan


def _check_targets(targets: Sequence[Path], inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuses, before anything runs, to write over an input (ever) or an existing file
    (unless overwrite)."""
    given = {p.resolve() for p in inputs}
    for t in targets:
        if t.resolve() in given:
            raise ValueError(f"refusing to write over the input {t}")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        names = ", ".join(map(str, existing[:5])) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
        raise ValueError(f"{'these outputs exist' if len(existing) > 1 else 'the output exists'}: "
                         f"{names}; pass --overwrite to replace, or choose another --output")


def write_image(target: Path, bgr: np.ndarray, overwrite: bool) -> None:
    """Encodes by the target's suffix and writes; without overwrite, never over an existing
    file (created exclusively). ValueError/OSError with the reason otherwise."""
    try:
        ok, buf = cv2.imencode(target.suffix.lower(), bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"cannot write {target}: {target.suffix or 'no suffix'} is not an image "
                         f"format OpenCV writes (use .jpg or .png)")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "wb" if overwrite else "xb") as f:
            f.write(buf.tobytes())
    except FileExistsError:
        raise ValueError(f"{target} appeared during the run; not overwritten (pass --overwrite)") from None


def _detector(args):
    from . import FaceDetector

    return FaceDetector(**_settings(args), device=args.device, weights=args.weights,
                        precision=args.precision)


def _print_faces(name: str, faces_json) -> None:
    print(f"{name}: {len(faces_json)} face(s)")
    for f in faces_json:
        x1, y1, x2, y2 = f["box"]
        print(f"  box {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}  score {f['score']:.4f}")


def _say(args, message: str) -> None:
    """A line for the user: stdout, or stderr when stdout carries --json."""
    print(message, file=sys.stderr if args.json else sys.stdout)


def _detect_video(det, path: Path, out: Optional[Path], args, jsonl) -> List[dict]:
    """Every frame of a video: per-frame records, an annotated video when asked for."""
    from ._progress import Progress
    from .video import open_capture

    cap = open_capture(path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    writer, records = None, []
    with Progress(total, path.name) as bar:
        for index, (rgb, faces) in enumerate(det.stream(path)):
            rec = {"image": str(path), "frame": index, "width": rgb.shape[1], "height": rgb.shape[0],
                   "faces": faces_to_json(faces)}
            records.append(rec)
            if jsonl is not None:
                jsonl.write(json.dumps(rec) + "\n")
            if out is not None:
                if writer is None:
                    if out.exists() and not args.overwrite:
                        raise ValueError(f"{out} appeared during the run; not overwritten (pass --overwrite)")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if out.suffix.lower() == ".avi" else "mp4v"))
                    writer = cv2.VideoWriter(str(out), fourcc, fps, (rgb.shape[1], rgb.shape[0]))
                    if not writer.isOpened():
                        raise ValueError(f"cannot write video {out}")
                writer.write(annotate(rgb, faces))
            bar.update()
    if writer is not None:
        writer.release()
    if not args.json:
        found = sum(len(r["faces"]) for r in records)
        print(f"{path}: {len(records)} frame(s), {found} face(s) in all")
    if writer is not None:
        _say(args, f"  annotated video written to {out}")
    return records


def cmd_detect(args) -> int:
    from ._progress import Progress
    from .video import is_video

    out = Path(args.output) if args.output else None
    given = [Path(p) for p in args.images]
    # --output is a folder when several inputs or a folder are given, when it is a folder
    # already, or when it ends with a "/" or has no suffix; else the annotated file of the one
    # input.
    to_folder = out is not None and (len(given) > 1 or any(p.is_dir() for p in given) or out.is_dir()
                                     or args.output.endswith(("/", "\\")) or not out.suffix)
    if out is not None and to_folder and any(out.resolve() == p.resolve() for p in given if p.is_dir()):
        raise ValueError(f"--output {out} is an input folder: choose another folder, so that the "
                         f"annotated copies are not mixed with (and read back as) the inputs")
    inputs = expand_inputs(args.images, exclude=out if to_folder else None)
    if not inputs:
        print("error: no images found", file=sys.stderr)
        return 2
    files = [f for f, _ in inputs]
    if out is None:
        plan: Dict[Path, Path] = {}
    elif to_folder:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--output {out} exists and is not a folder (several inputs need a folder)")
        plan = plan_outputs(inputs, out)
    else:
        plan = {files[0]: out}
    targets = list(plan.values()) + ([Path(args.jsonl)] if args.jsonl else [])
    _check_targets(targets, files, args.overwrite)
    many = len(inputs) > 1
    det = _detector(args)
    jsonl = open(args.jsonl, "w" if args.overwrite else "x") if args.jsonl else None
    results, status = [], 0
    try:
        with Progress(len(inputs), "images", enabled=None if many else False) as bar:
            for path in files:
                bar.update()
                target = plan.get(path)
                if is_video(path):
                    results.extend(_detect_video(det, path, target, args, jsonl))
                    continue
                try:
                    rgb = read_rgb(path)
                except ValueError as e:
                    print(f"error: {e}", file=sys.stderr)
                    status = 1
                    continue
                faces = det.detect(rgb)
                rec = {"image": str(path), "width": rgb.shape[1], "height": rgb.shape[0],
                       "faces": faces_to_json(faces)}
                if target is not None:
                    try:
                        write_image(target, annotate(rgb, faces), args.overwrite)
                        rec["output"] = str(target)
                    except (ValueError, OSError) as e:
                        print(f"error: {e}", file=sys.stderr)
                        status = 1
                results.append(rec)
                if jsonl is not None:
                    jsonl.write(json.dumps(rec) + "\n")
                if not args.json:
                    _print_faces(str(path), rec["faces"])
                if "output" in rec:
                    _say(args, f"  annotated image written to {target}")
    finally:
        if jsonl is not None:
            jsonl.close()
    if args.json:
        print(json.dumps(results))
    if args.jsonl:
        _say(args, f"JSON lines written to {args.jsonl}")
    return status


def cmd_demo(args) -> int:
    out = Path(args.output)
    _check_targets([out], [], args.overwrite)
    rgb = read_rgb(sample_image_path())
    faces = _detector(args).detect(rgb)
    write_image(out, annotate(rgb, faces), args.overwrite)
    print(f"sample photo: {sample_image_path()} (NASA, public domain)")
    for f in faces_to_json(faces):
        print(f"  face {f['box']} score {f['score']:.4f}")
        names = ("left eye", "right eye", "nose", "left mouth", "right mouth")
        print("   ", ", ".join(f"{n} {p}" for n, p in zip(names, f["landmarks"])))
    print(f"{len(faces)} face(s); annotated image written to {out}")
    return 0


def _load_predictions(path: Path, keys):
    from . import evaluation as ev

    return ev.read_predictions_official(path, keys) if path.is_dir() else ev.read_predictions_jsonl(path)


def _check_saved(path: Path, overwrite: bool) -> None:
    """--save-predictions writes over nothing that exists (a file, or a folder with files in
    it) unless --overwrite."""
    if not overwrite and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} exists{' and is not empty' if path.is_dir() else ''}; pass "
                         f"--overwrite to write the predictions there anyway, or choose another path")


def _save_predictions(path: Path, predictions) -> None:
    from . import evaluation as ev

    if path.suffix == ".jsonl":
        ev.write_predictions_jsonl(path, predictions)
    else:
        ev.write_predictions_official(path, predictions)


def cmd_eval_widerface(args) -> int:
    from . import evaluation as ev

    if args.save_predictions:
        _check_saved(Path(args.save_predictions), args.overwrite)
    if args.plot_dir:
        _check_targets([Path(args.plot_dir) / f"pr_{s}.png" for s in ev.SETTINGS], [],
                       args.overwrite)
    root = Path(args.root)
    if args.layout == "official":
        images_dir = Path(args.images) if args.images else root / "WIDER_val" / "images"
        prefix = ""
        try:
            prefix = str(images_dir.relative_to(root)) + "/"
            base = root
        except ValueError:
            base = images_dir
        gt = ev.load_widerface_official(
            Path(args.gt_txt) if args.gt_txt else root / "wider_face_val_bbx_gt.txt",
            Path(args.mat_dir) if args.mat_dir else root / "ground_truth",
            image_prefix=prefix,
        )
    else:
        base = root
        gt = ev.load_widerface_jsonl(root)
    if args.limit:
        gt = gt[: args.limit]
    if args.predictions:
        predictions = _load_predictions(Path(args.predictions), [g.image for g in gt])
    else:
        det = _detector(args)
        predictions = ev.detect_all(det.detect, [(g.image, base / g.image) for g in gt],
                                    progress=not args.quiet, label="WIDER FACE")
    if args.save_predictions:
        _save_predictions(Path(args.save_predictions), predictions)
    results = ev.evaluate_widerface(gt, predictions)
    print(f"WIDER FACE AP on {len(gt)} images ({root})")
    print(f"{'setting':<8} {'faces':>6} {'AP':>7}")
    for setting, r in results.items():
        print(f"{setting:<8} {r.faces:>6} {r.ap:>7.4f}")
    if args.plot_dir:
        paths = ev.plot_pr(results, Path(args.plot_dir))
        print("plots: " + (", ".join(map(str, paths)) if paths else "matplotlib not installed"))
    return 0


def cmd_eval_landmarks(args) -> int:
    from . import evaluation as ev

    if args.save_predictions:
        _check_saved(Path(args.save_predictions), args.overwrite)
    file = Path(args.file)
    samples = ev.load_landmarks_jsonl(file)
    if args.limit:
        samples = samples[: args.limit]
    if args.predictions:
        predictions = _load_predictions(Path(args.predictions), [s.image for s in samples])
    else:
        det = _detector(args)
        predictions = ev.detect_all(lambda rgb: det.detect(ev.landmark_canvas(rgb)),
                                    [(s.image, file.parent / s.image) for s in samples],
                                    progress=not args.quiet, label="landmarks")
    if args.save_predictions:
        ev.write_predictions_jsonl(Path(args.save_predictions), predictions)
    r = ev.landmark_errors(samples, predictions)
    print(f"landmarks on {r.crops} crops ({file}); each crop centred on a "
          f"{ev.CANVAS_PAD}-px edge-replicated canvas")
    print(f"mean error / inter-ocular distance: {r.mean_error:.4f}")
    print(f"failure rate (error > {ev.LANDMARK_FAILURE:.0%}): {r.failure_rate:.4f}")
    print(f"crops with no face found: {r.no_face}")
    return 0


def cmd_align_dataset(args) -> int:
    from .dataset import align_dataset

    try:
        summary = align_dataset(
            args.in_dir, args.out_dir, size=args.size, margin=args.margin,
            margin_size=args.margin_size, workers=args.workers, threads=args.threads,
            io_threads=args.io_threads, **_settings(args), device=args.device,
            weights=args.weights, precision=args.precision, ray=args.ray, progress=not args.quiet)
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if summary.images == 0:
        print(f"error: no images found in {args.in_dir}", file=sys.stderr)
        return 2
    shown = list(summary.errors.items())
    for rel, message in shown[:20]:
        print(f"error: {rel}: {message}", file=sys.stderr)
    if len(shown) > 20:
        print(f"error: ... and {len(shown) - 20} more (see the manifest)", file=sys.stderr)
    print(f"{summary.images} image(s): {summary.processed} processed now, {summary.skipped} done "
          f"before; {summary.faces} face(s); {summary.failed} unreadable; manifest {summary.manifest}")
    return 1 if summary.failed else 0


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that exist (without it, existing files are an error)")


def _add_settings(p: argparse.ArgumentParser, preset: bool = True) -> None:
    if preset:
        from .detector import PRESETS

        p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                       help="named settings: original (the defaults) or widerface (the highest "
                            "WIDER FACE AP found, slower); flags given explicitly override it")
    p.add_argument("--min-face-size", type=float, default=None, help="smallest face in px (20)")
    p.add_argument("--thresholds", type=float, nargs=3, default=None,
                   metavar=("P", "R", "O"), help="stage score thresholds (0.6 0.7 0.7)")
    p.add_argument("--scale-factor", type=float, default=None, help="pyramid ratio (0.709)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    p.add_argument("--weights", help="folder holding pnet.npz, rnet.npz and onet.npz (default: the original weights)")
    p.add_argument("--precision", default="float32", type=_precision, metavar="NAME | NET=NAME[,NET=NAME]",
                   help="network arithmetic: float32 (default), bfloat16 (CPU with bf16, CUDA), float16 "
                        "(CUDA); or per network, the others in float32, e.g. onet=bfloat16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtcnn-fast", description="MTCNN face detection.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detect", help="detect faces in images, videos or folders of them")
    p.add_argument("images", nargs="+", help="image or video files, or folders")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--jsonl", help="also write one JSON line per image or video frame to this file")
    p.add_argument("--output", help="annotated image or video (one file), or a folder (several inputs, "
                   "a folder given, or a path ending in / or without a suffix): the input tree "
                   "mirrored, <name>_faces.<suffix> per input")
    _add_overwrite(p)
    _add_settings(p)
    p.set_defaults(func=cmd_detect)
    p = sub.add_parser("demo", help="run on the bundled sample photo")
    p.add_argument("--output", default="mtcnn_fast_demo.jpg", help="annotated image to write")
    _add_overwrite(p)
    _add_settings(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("align-dataset", help="aligned face crops and a manifest for a folder tree of photos",
                       description="Detects the faces of every image under IN_DIR and writes "
                       "OUT_DIR/aligned/<path>_<k>.png (ArcFace-aligned crops), optionally "
                       "OUT_DIR/margin/<path>_<k>.png, and OUT_DIR/manifest.jsonl. A rerun resumes.")
    p.add_argument("in_dir", metavar="IN_DIR", help="folder of images (walked recursively)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (created; reruns resume in it)")
    p.add_argument("--size", type=int, default=112, help="side of the aligned crops (112)")
    p.add_argument("--margin", type=float, default=None,
                   help="also write square crops with this margin, a fraction of the box side (off)")
    p.add_argument("--margin-size", type=int, default=160, help="side of the margin crops (160)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes, or with --ray detector actors (1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per worker (default: CPUs / workers; 1 per Ray actor)")
    p.add_argument("--io-threads", type=int, default=2, help="reader threads per worker (2)")
    p.add_argument("--ray", nargs="?", const=True, default=False, metavar="ADDRESS",
                   help="run on Ray (needs mtcnn-fast[ray]); ADDRESS: a cluster to join, e.g. auto "
                   "(put --ray after IN_DIR OUT_DIR, or write --ray=ADDRESS)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_settings(p, preset=False)
    p.set_defaults(func=cmd_align_dataset)

    ev = sub.add_parser("eval", help="measure accuracy (WIDER FACE AP, landmark error)")
    evs = ev.add_subparsers(dest="eval_command", required=True)
    p = evs.add_parser("widerface", help="AP for easy, medium and hard (official protocol)")
    p.add_argument("--root", required=True, help="data folder (annotations.jsonl, or the official files)")
    p.add_argument("--layout", choices=["jsonl", "official"], default="jsonl",
                   help="jsonl: ROOT/annotations.jsonl; official: wider_face_val_bbx_gt.txt + .mat lists")
    p.add_argument("--gt-txt", help="official ground truth text file (default ROOT/wider_face_val_bbx_gt.txt)")
    p.add_argument("--mat-dir", help="folder of wider_{easy,medium,hard}_val.mat (default ROOT/ground_truth)")
    p.add_argument("--images", help="official layout: images folder (default ROOT/WIDER_val/images)")
    p.add_argument("--predictions", help="evaluate saved predictions (.jsonl file or official folder)")
    p.add_argument("--save-predictions", help="save predictions (.jsonl file, or an official folder)")
    p.add_argument("--plot-dir", help="write precision-recall PNGs here (needs matplotlib)")
    _add_overwrite(p)
    p.add_argument("--limit", type=int, default=0, help="first N images only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_settings(p)
    p.set_defaults(func=cmd_eval_widerface)
    p = evs.add_parser("landmarks", help="5-point landmark error on face crops")
    p.add_argument("--file", required=True, help="landmarks_5pt-style .jsonl")
    p.add_argument("--predictions", help="evaluate saved canvas predictions (.jsonl)")
    p.add_argument("--save-predictions", help="save canvas predictions (.jsonl)")
    _add_overwrite(p)
    p.add_argument("--limit", type=int, default=0, help="first N crops only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_settings(p)
    p.set_defaults(func=cmd_eval_landmarks)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as e:  # OSError: a missing or unreadable file
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
