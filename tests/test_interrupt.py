"""A real Ctrl-C (SIGINT) to ``mfax train``: it stops within seconds, saves the last
evaluated agent marked ``interrupted`` with its training state, and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import mfax_command

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def test_sigint_stops_mfax_train_quickly_and_saves(tmp_path):
    out = tmp_path / "agent"
    cmd = mfax_command() + [
        "train",
        "--game",
        "linear_quadratic",
        "--algo",
        "spg",
        "--out",
        str(out),
        "--param",
        "num_states=11",
        "--param",
        "horizon=4",
        "--progress",
        "--set",
        "num_iterations=1000000",
        "--set",
        "eval_every=50",
        "--set",
        "num_envs=2",
        "--set",
        "hidden=[8]",
        "--set",
        "embed_dim=4",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    err = bytearray()
    progressed = threading.Event()

    def read_stderr():
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.extend(chunk)
            if b"iter 50/" in err:  # the progress line after the first evaluation interval
                progressed.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert progressed.wait(240), f"no progress line; stderr: {bytes(err)[-2000:]!r}"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)  # stderr stays with the reader thread
        waited = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    proc.stdout.close()
    proc.stderr.close()
    text = bytes(err).decode(errors="replace")
    assert proc.returncode == 130, (proc.returncode, text[-2000:])
    assert waited < 10.0, f"took {waited:.1f}s to stop after SIGINT"
    assert "Ctrl-C" in text and "interrupted" in text
    assert f"mfax train --resume {out}" in text  # where it is and how to continue
    desc = json.loads((out / "agent.json").read_text())
    assert desc["status"] == "interrupted"
    assert desc["metrics"]["iterations"] >= 50 and desc["metrics"]["iterations"] % 50 == 0
    meta = json.loads((out / "training_state.json").read_text())
    assert meta["status"] == "interrupted" and meta["iteration"] >= desc["metrics"]["iterations"]
    print(f"SIGINT -> exit: {waited:.2f}s")
