"""Per-job timings: where each pipeline job spends its wall-clock (docs/PERFORMANCE.md).

Every train, evaluate and report job writes ``data/<game>/<run>/timings/<stage>.json``
(`mfax.pipeline.runs.timings_path`): seconds per phase, in the order they ran, for example::

    {"stage": "train", "startup": 0.9, "import": 1.6, "compile": 4.1, "train": 2.0,
     "evaluate": 0.3, "write": 0.1, "total": 9.0}

``startup`` is the interpreter and the ``mfax`` command up to the job's own code
(from the process's start, read from ``/proc`` on Linux; absent elsewhere),
``import`` the modules the job loads then (JAX for train and evaluate), ``compile``
JAX's tracing, lowering and compiling (or loading from the persistent cache), taken
out of the phase it ran in; ``total`` is the job's wall-clock from the process's start
to the end of its last phase, ``cpu`` the process's CPU seconds over that time (all
its threads: on a machine shared with other work, less noisy than the wall-clock).
The files are DVC outputs (cached, git-ignored under ``data/``), not DVC metrics, so
``dvc metrics diff`` shows no timing noise; the summary reads them
(`mfax.pipeline.reports`).  Nothing here imports JAX.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mfax.pipeline.runs import TIMED_STAGES, TIMINGS, timings_path  # noqa: F401  (re-exported)


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None where unknown."""
    try:
        with open("/proc/self/stat") as f:
            # field 22 (starttime, clock ticks after boot) follows the ")" closing the name
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - start / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


#: JAX's own events (`jax.monitoring`) for tracing, lowering to MLIR and compiling by XLA
#: (a persistent-cache hit is a fast "compile"); their union in time is ``compile``
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
CACHE_EVENTS = {
    "/jax/compilation_cache/cache_hits": "cache_hits",
    "/jax/compilation_cache/cache_misses": "cache_misses",
}


class Timer:
    """Phases of one job: `lap` closes the phase running since the last lap (or since the
    timer was made, the job's ``startup`` being the process's age then).  After
    `watch_jax`, the time JAX spends tracing, lowering and compiling (or loading from the
    persistent cache) is taken out of every phase and summed as ``compile``."""

    def __init__(self, stage: str):
        self.stage = stage
        self.age0 = process_age()
        self.t0 = self.last = time.perf_counter()
        self.wall_last = time.time()  # JAX reports time spans in time.time()
        self.phases: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.spans: list[tuple[float, float]] = []
        if self.age0 is not None:
            self.phases["startup"] = self.age0
        self.phases["compile"] = 0.0

    def watch_jax(self) -> None:
        """Record JAX's compilation spans and persistent-cache hits from now on."""
        import jax.monitoring

        def on_span(event, start, end, **_):
            if event in COMPILE_EVENTS:
                self.spans.append((start, end))

        def on_event(event, **_):
            if event in CACHE_EVENTS:
                self.counts[CACHE_EVENTS[event]] = self.counts.get(CACHE_EVENTS[event], 0) + 1

        jax.monitoring.register_event_time_span_listener(on_span)
        jax.monitoring.register_event_listener(on_event)

    def compiled(self) -> float:
        """Seconds of JAX compilation since the last lap (nested events counted once)."""
        total, end = 0.0, self.wall_last
        for a, b in sorted(self.spans):
            a = max(a, end)
            if b > a:
                total, end = total + b - a, b
        return total

    def lap(self, name: str, **parts: float) -> None:
        """Close the running phase as ``name``, less the JAX compilation in it (added to
        ``compile``) and less ``parts`` measured inside it (seconds; e.g. a training
        call's train and evaluate seconds from the driver)."""
        parts = {"compile": self.compiled(), **{k: v for k, v in parts.items() if v}}
        now = time.perf_counter()
        dt, self.last, self.wall_last = now - self.last, now, time.time()
        for key, seconds in parts.items():
            self.phases[key] = self.phases.get(key, 0.0) + float(seconds)
        self.phases[name] = self.phases.get(name, 0.0) + max(dt - sum(parts.values()), 0.0)

    def as_dict(self) -> dict:
        total = (self.age0 or 0.0) + time.perf_counter() - self.t0
        cpu = os.times()  # this process's CPU seconds since it started: all its threads
        return {
            "stage": self.stage,
            **{k: round(v, 4) for k, v in self.phases.items()},
            "total": round(total, 4),
            "cpu": round(cpu.user + cpu.system, 4),
            **self.counts,
        }

    def write(self, path: str | os.PathLike) -> dict:
        """Write the timings (``total`` up to now) atomically; returns them."""
        from mfax.io import atomic_write

        data = self.as_dict()
        atomic_write(path, json.dumps(data, indent=2) + "\n")
        return data


def read_timings(path: str | os.PathLike) -> dict | None:
    """A timings file, or None if it is missing or unreadable (timings never fail a job)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
