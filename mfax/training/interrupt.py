"""Ctrl-C and SIGTERM during training: `interrupt_guard` turns them into a flag that the
driver (`mfax.training.driver.drive`) reads between compiled calls, so a run stops
cleanly after the call in flight and keeps its work (the last evaluated agent, the state
to resume from).  A second Ctrl-C aborts."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: exit status of an interrupted ``mfax train`` (128 + SIGINT, as a shell reports it)
INTERRUPTED_EXIT_CODE = 130


class Interrupt:
    """A flag set by SIGINT / SIGTERM while an `interrupt_guard` is active."""

    def __init__(self, after_calls: int | None = None):
        self.requested = False
        self.signal: int | None = None
        #: testing hook: act as if Ctrl-C came after this many compiled training calls
        self.after_calls = after_calls
        self.calls = 0

    def count_call(self) -> None:
        self.calls += 1
        if self.after_calls is not None and self.calls >= self.after_calls:
            self.requested = True


_active = threading.local()  # .flag: the guard active in this thread


@contextlib.contextmanager
def interrupt_guard(stream=None, after_calls: int | None = None) -> Iterator[Interrupt]:
    """Within the block, SIGINT and SIGTERM set ``flag.requested`` instead of raising.

    The first signal prints one line on ``stream`` (stderr) and lets the driver stop
    after the compiled call in flight; a second SIGINT restores the previous handler
    and raises KeyboardInterrupt.  Nested guards share the outer flag.  Outside the main
    thread (where Python cannot install handlers) the flag exists but no signal sets it.
    """
    outer = getattr(_active, "flag", None)
    if outer is not None:
        if after_calls is not None:
            outer.after_calls = after_calls
        yield outer
        return
    flag = Interrupt(after_calls)
    out = sys.stderr if stream is None else stream
    installed: dict[int, Any] = {}

    def handler(signum, frame):
        if flag.requested and signum == signal.SIGINT:
            for sig, previous in installed.items():
                signal.signal(sig, signal.SIG_DFL if previous is None else previous)
            raise KeyboardInterrupt
        flag.requested, flag.signal = True, signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        try:
            out.write(
                f"\n{name}: stopping after the current step "
                "(press Ctrl-C again to abort without saving)\n"
            )
            out.flush()
        except Exception:
            pass

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                installed[sig] = signal.getsignal(sig)
                signal.signal(sig, handler)
            except (ValueError, OSError):  # e.g. an embedded interpreter
                installed.pop(sig, None)
    _active.flag = flag
    try:
        yield flag
    finally:
        _active.flag = None
        for sig, previous in installed.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
