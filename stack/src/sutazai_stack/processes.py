"""Child processes the stack starts: logs to a file, stopped in order, never left behind."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the stack process dies, even by SIGKILL, so nothing is orphaned.
    (Linux prctl; Python has no wrapper, hence ctypes.)"""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class ManagedProcess:
    def __init__(
        self, name: str, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None,
        stop_signal: int = signal.SIGTERM, user: str | None = None, cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.stop_signal = stop_signal
        self.user = user
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.service = name  # the service this process is an instance of

    def start(self) -> None:
        """Start the child. Call from a thread that lives as long as the child should: the kernel's
        parent-death signal fires when the *thread* that forked it exits, not only the process."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        preexec: Callable[[], None] | None = _die_with_parent
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, user=self.user, preexec_fn=preexec,
            start_new_session=True,  # Ctrl-C reaches the stack only, which stops children in order
        )
        out.close()
        log.info("started %s (pid %d), log: %s", self.name, self.proc.pid, self.log_path)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.proc.pid, self.stop_signal)
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout_s)
            self.proc.kill()
            self.proc.wait(5)
        except ProcessLookupError:
            pass
        log.info("stopped %s (exit %s)", self.name, self.proc.returncode)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
