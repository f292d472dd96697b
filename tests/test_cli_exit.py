"""The ``mfax`` script ends its process with ``os._exit`` (no interpreter teardown): its
exit status and everything it printed must come out exactly as with a normal exit."""

from __future__ import annotations

import gc
import os
import subprocess

import pytest
from conftest import mfax_command
from typer.testing import CliRunner

import mfax.cli as cli


@pytest.fixture(autouse=True)
def _keep_gc_threshold():
    """`cli.main` sets the collector's threshold for its process; not for the test session."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_output_redirected_to_a_file_is_complete(tmp_path):
    expected = CliRunner().invoke(cli.app, ["games"]).output
    out = tmp_path / "games.txt"
    with open(out, "w") as f:  # a file: block-buffered, so only the flush writes it
        proc = subprocess.run(mfax_command() + ["games"], stdout=f, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == expected
    assert expected.count("\n") > 10


def test_a_usage_error_keeps_its_exit_status_and_message():
    proc = subprocess.run(
        mfax_command() + ["solve", "--game", "no_such_game"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "no_such_game" in proc.stderr


@pytest.mark.parametrize(
    "stop, code, message", [(None, 0, ""), (3, 3, ""), ("went wrong", 1, "went wrong\n")]
)
def test_main_maps_system_exit_to_the_status(monkeypatch, capsys, stop, code, message):
    def app():
        raise SystemExit(stop)

    exits = []

    def fake_exit(status):
        exits.append(status)

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(os, "_exit", fake_exit)
    cli.main()
    assert exits == [code]
    assert capsys.readouterr().err == message


def test_main_runs_the_command_with_the_collectors_threshold_raised(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "app", lambda: seen.append(gc.get_threshold()))
    monkeypatch.setattr(os, "_exit", lambda status: seen.append(status))
    gc.set_threshold(700, 10, 10)  # CPython's default
    cli.main()
    assert seen == [cli.GC_THRESHOLD, 0]
    assert cli.GC_THRESHOLD[0] >= 10_000 and gc.isenabled()
