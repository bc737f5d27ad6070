"""Client-side load balancing without I/O: endpoints with their load, and the strategies that pick one."""

from sutazai_runtime.balancing.endpoint import Endpoint
from sutazai_runtime.balancing.strategies import ALIASES, STRATEGIES, Strategy, make_strategy

__all__ = ["ALIASES", "STRATEGIES", "Endpoint", "Strategy", "make_strategy"]
