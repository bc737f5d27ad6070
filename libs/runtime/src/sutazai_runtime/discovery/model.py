"""What the registry holds: one ``Instance`` per running copy of a service."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

PASSING = "passing"
CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of a service. ``metadata`` carries at least ``version``, ``zone``, ``weight`` and
    ``metrics_port`` for the platform's own instances; ``state`` is ``passing`` while its health is SERVING."""

    id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    state: str = PASSING
    external: bool = False

    @property
    def target(self) -> str:
        """host:port for a gRPC channel."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def weight(self) -> int:
        try:
            return max(1, int(self.metadata.get("weight", "1")))
        except ValueError:
            return 1

    @property
    def passing(self) -> bool:
        return self.state == PASSING

    def with_state(self, state: str) -> Instance:
        return replace(self, state=state)

    def encode(self) -> bytes:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Instance:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(data["id"]), name=str(data["name"]), address=str(data["address"]), port=int(data["port"]),
            tags=tuple(str(t) for t in data.get("tags", ())),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            state=str(data.get("state", PASSING)), external=bool(data.get("external", False)),
        )
