"""A dependency-free progress bar for long runs (written to stderr, only when it is a terminal
or when forced): done/total, the rate (items per second, "img/s" with unit="img") and the time
left."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str = "", enabled=None, stream=None, unit: str = ""):
        self.total, self.label, self.done, self.unit = total, label, 0, unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.done == self.total):
            self._last = now
            rate = self.done / max(now - self.start, 1e-9)
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            left = ""
            if 0 < self.done < self.total:
                secs = round((self.total - self.done) / max(rate, 1e-9))
                left = f" eta {secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}"
            unit = f" {self.unit}" if self.unit else ""
            self.stream.write(
                f"\r{self.label} [{bar}] {self.done}/{self.total} {rate:.1f}{unit}/s{left}\033[K"
            )
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.enabled and self.done != self.total:
            self.stream.write("\n")
        return False
