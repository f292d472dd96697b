"""A tiny progress line on stderr (no dependency), shown only on a terminal."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """``update(iteration, exploitability, seconds)`` redraws one line: bar, iteration, metrics.

    ``enabled=None`` draws only when ``stream`` is a TTY, so logs and pipelines stay clean.
    """

    def __init__(self, total: int, stream=None, enabled: bool | None = None, width: int = 24):
        self.total = max(int(total), 1)
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.width = width
        self.start = time.perf_counter()
        self._drawn = False

    def update(self, iteration: int, exploitability: float, seconds: float | None = None) -> None:
        if not self.enabled:
            return
        seconds = time.perf_counter() - self.start if seconds is None else seconds
        filled = int(self.width * min(iteration, self.total) / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] iter {iteration}/{self.total}  "
            f"exploitability {exploitability:.4g}  {seconds:.1f}s "
        )
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
