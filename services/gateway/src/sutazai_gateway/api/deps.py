"""Request dependencies: the long-lived objects the lifespan created, typed for the routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from sutazai_gateway.config import Settings
from sutazai_gateway.health_monitor import HealthMonitor
from sutazai_gateway.upstreams import Upstreams


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    upstreams: Upstreams
    monitor: HealthMonitor
    started_monotonic: float


def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]
