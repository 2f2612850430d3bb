"""align_dataset's local runner: reader threads -> detector -> writer thread in this process
(one worker), or in each of several spawned worker processes fed from one task queue."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ._dataset_records import _analyse, _Config, _load, _write_image

_END = object()


def _process(cfg: _Config, det, next_job: Callable[[], str | None],
             report: Callable[[str, int, str | None], None], io_threads: int) -> None:
    """Runs the images that next_job() hands out (None: no more) through the detector.

    io_threads reader threads read and decode ahead into a bounded queue, so the detector does
    not wait on the disk; one writer thread encodes and writes the crops and records, so it
    does not wait on the disk either. report(rel, faces, error) is called once each image is
    fully written."""
    ready: queue.Queue = queue.Queue(maxsize=2 * io_threads)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                pass

    def reader() -> None:
        try:
            while not stop.is_set():
                rel = next_job()
                if rel is None:
                    break
                put(_load(cfg, rel))
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which raises it
            put(e)
        finally:
            put(_END)

    readers = [threading.Thread(target=reader, daemon=True) for _ in range(io_threads)]
    for t in readers:
        t.start()
    pending: deque = deque()
    try:
        with ThreadPoolExecutor(max_workers=1) as writer:

            def harvest(block: bool) -> None:
                while pending and (block or pending[0][0].done()):
                    future, rel, n, error = pending.popleft()
                    future.result()
                    report(rel, n, error)

            ended = 0
            while ended < io_threads:
                item = ready.get()
                if item is _END:
                    ended += 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                rel, rgb, error = item
                text, n, files = _analyse(cfg, det, rel, rgb, error)
                pending.append((writer.submit(_write_image, cfg.out_dir, rel, text, files), rel, n, error))
                harvest(block=len(pending) > 2 * io_threads)
            harvest(block=True)
    finally:
        stop.set()
        for t in readers:
            t.join()


def _run_here(cfg: _Config, det, jobs: list[str], threads: int | None, io_threads: int,
              report) -> None:
    """One worker: the pipeline in this process, with `threads` torch threads (None: torch's own)
    for the run."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        lock, it = threading.Lock(), iter(jobs)

        def next_job() -> str | None:
            with lock:
                return next(it, None)

        _process(cfg, det, next_job, report, io_threads)
    finally:
        torch.set_num_threads(before)


def _worker_main(cfg: _Config, threads: int, io_threads: int, tasks, results) -> None:
    """One worker process (spawned): its own detector, `threads` torch threads."""
    try:
        import torch

        torch.set_num_threads(threads)
        det = cfg.make_detector()
        _process(cfg, det, tasks.get, lambda rel, n, err: results.put(("done", rel, n, err)), io_threads)
        results.put(("finished", None, 0, None))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        results.put(("failed", traceback.format_exc(), 0, None))


def _run_processes(cfg: _Config, jobs: list[str], workers: int, threads: int, io_threads: int,
                   report) -> None:
    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for rel in jobs:
        tasks.put(rel)
    for _ in range(workers * io_threads):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, args=(cfg, threads, io_threads, tasks, results),
                         name=f"mtcnn-fast-worker-{i}", daemon=True) for i in range(workers)]
    for p in procs:
        p.start()
    try:
        finished = 0
        while finished < workers:
            try:
                kind, rel, n, error = results.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"worker process {dead[0].name} died (exit code "
                                       f"{dead[0].exitcode}); rerun to resume") from None
                continue
            if kind == "done":
                report(rel, n, error)
            elif kind == "finished":
                finished += 1
            else:
                raise RuntimeError(f"a worker process failed; rerun to resume:\n{rel}")
    finally:
        for p in procs:
            if p.is_alive():
                p.join(timeout=5 if finished == workers else 0)
            if p.is_alive():
                p.terminate()
                p.join()
        for q in (tasks, results):
            q.cancel_join_thread()
            q.close()
