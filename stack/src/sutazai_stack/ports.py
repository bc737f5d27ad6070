"""Port helpers: is something answering, and which port is free."""

from __future__ import annotations

import random
import socket
from contextlib import closing
from pathlib import Path

# The platform's standard ports (services.py, infra.py): never handed out as "free".
_STANDARD = {5432, 6379, 4222, 10010, 11435, 11436, *range(9101, 9107), *range(50051, 50056)}
_LOWEST = 10240


def answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to, chosen at random *below* the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which outgoing
    connections draw from too: on a busy machine one of them could take it between this call and the
    server's own bind (seen: a gateway failing with "address already in use"). Below the range, only
    another server choosing the same random port can."""
    start = _ephemeral_start()
    if start - _LOWEST > 1000:
        for _ in range(100):
            port = random.randrange(_LOWEST, start)
            if port not in _STANDARD and _bindable(host, port):
                return port
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
