"""Process-level helpers for services that run more than one process."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (even by SIGKILL), so a worker of a
    supervisor that was killed does not linger holding the port. When ``parent_pid`` is given and the parent
    is already gone (it died before this call), the signal is sent at once. No-op elsewhere. (Linux prctl;
    Python has no wrapper, hence ctypes.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
