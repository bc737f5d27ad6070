"""CPU, memory and disk use of this machine, read at most once a second.

``/api/v1/status`` is polled by monitors and load balancers; reading /proc on every call would cost
more than the rest of the request, and a one-second-old reading is as true as a fresh one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class Sample:
    cpu: float
    memory: float
    disk: float


class SystemSampler:
    def __init__(self, max_age_s: float = 1.0) -> None:
        self._max_age_s = max_age_s
        self._at = -max_age_s
        self._sample = Sample(0.0, 0.0, 0.0)

    def sample(self) -> Sample:
        now = time.monotonic()
        if now - self._at >= self._max_age_s:
            self._sample = Sample(
                psutil.cpu_percent(interval=None), psutil.virtual_memory().percent, psutil.disk_usage("/").percent
            )
            self._at = now
        return self._sample


SAMPLER = SystemSampler()
