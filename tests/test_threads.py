"""`mfax --threads N` / `mfax.xla.limit_cpu_threads`: the size of XLA's CPU thread pool.

The pipeline gives every train and evaluate job `mfax.pipeline.JOB_THREADS` threads
(tests/test_pipeline.py checks the commands); here: that the number reaches XLA, and
that bad values and late calls fail clearly."""

from __future__ import annotations

import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from mfax.xla import limit_cpu_threads

#: a child that sizes the pool (through the library or the CLI's option), computes, and
#: prints how many of XLA's pool threads it has
CHILD = """
import os, sys
how, n = sys.argv[1], int(sys.argv[2])
if how == "cli":
    from mfax.cli import app
    app(["--threads", str(n), "games"], standalone_mode=False)
else:
    from mfax.xla import limit_cpu_threads
    limit_cpu_threads(n)
import jax.numpy as jnp
x = jnp.ones((256, 256)); (x @ x).block_until_ready()
tasks = os.listdir("/proc/self/task")
print(sum(open(f"/proc/self/task/{t}/comm").read().strip().endswith("XLAEigen") for t in tasks))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
@pytest.mark.parametrize("how", ["library", "cli"])
@pytest.mark.parametrize("threads", [1, 3])
def test_the_number_of_threads_reaches_xla(how, threads):
    env = {k: v for k, v in os.environ.items() if k != "PJRT_NPROC"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, how, str(threads)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(out.split()[-1]) == threads


@pytest.mark.parametrize("bad", [0, -2, True, 1.5, "2"])
def test_a_bad_number_of_threads_is_refused(bad):
    with pytest.raises(ValueError, match=r"threads = .* is not allowed; expected an integer >= 1"):
        limit_cpu_threads(bad)


def test_too_late_once_jax_has_started(monkeypatch):
    monkeypatch.delenv("PJRT_NPROC", raising=False)
    jnp.zeros(1).block_until_ready()  # this process's backend is up
    with pytest.raises(RuntimeError, match="call it before JAX runs anything"):
        limit_cpu_threads(1)
    assert "PJRT_NPROC" not in os.environ  # nothing half-set


def test_the_cli_refuses_a_bad_number_of_threads():
    r = subprocess.run(
        [sys.executable, "-m", "mfax.cli", "--threads", "0", "games"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    words = " ".join(r.stderr.replace("│", " ").split())
    assert "'--threads': Input should be greater than or equal to 1" in words
