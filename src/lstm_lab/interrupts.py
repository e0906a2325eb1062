"""Ctrl+C and SIGTERM end a run as interrupted: non-zero exit, one line, MLflow KILLED, nothing half-saved.

Without this, Lightning turns SIGTERM and Ctrl+C into ``SystemExit`` (exit 0 or 1, no message), which Kedro's
error hook never sees (it catches ``Exception``), and MLflow's exit handler then ends the run FINISHED: ``dvc
repro``, cron or CI would take a run that produced nothing for a success.

``signals_raise()`` makes both signals raise :class:`RunInterrupted` in the main thread. It derives from
``BaseException`` like ``KeyboardInterrupt``: Kedro's runner and Lightning's fit let it through (Lightning tears
its processes down first), and the command line (``lstm_lab.cli``) turns it into the exit status the shell uses
for a signal, 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(BaseException):
    """The run was stopped by a signal; ``detail`` says what was kept, if the code that stopped knows."""

    def __init__(self, signum: int, detail: str = ""):
        self.signum, self.detail = int(signum), detail
        super().__init__(self.signal_name + (f": {detail}" if detail else ""))

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# Signals whose RunInterrupted the handler raised inside signals_raise(), newest last. Python prints and drops an
# exception raised while a finaliser or a weakref callback runs ("Exception ignored in ..."): a signal landing
# there (seen under load, in SQLAlchemy's weakref callback during garbage collection) would be lost and the run go
# on. ``raise_if_swallowed`` raises it again at the next batch or node.
_caught: list[int] = []


def _raise(signum, frame) -> None:
    _caught.append(signum)
    raise RunInterrupted(signum)


def raise_if_swallowed() -> None:
    """Raise :class:`RunInterrupted` again for a signal caught inside ``signals_raise()`` (called at every
    training batch and before every node: where a lost one must stop the run)."""
    if _caught:
        raise RunInterrupted(_caught[-1])


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`RunInterrupted` inside the block (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, _raise)
    try:
        yield
    finally:
        _caught.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
