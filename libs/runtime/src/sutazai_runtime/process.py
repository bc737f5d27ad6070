"""Process-level helpers for services that run more than one process."""

from __future__ import annotations

import ctypes
import gc
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


def freeze_startup_objects() -> None:
    """Take everything made while starting (modules, the app, clients, settings: most of a service's objects)
    out of the garbage collector's generations (``gc.freeze``, made for long-running servers). A full
    collection then scans only what the requests made; before, each one walked the whole startup heap, which
    py-spy showed as time spent at allocation sites of the hot path (a process with the OpenTelemetry SDK
    loaded paid more: more objects). Called once, when the process is ready to serve."""
    gc.collect()
    gc.freeze()
