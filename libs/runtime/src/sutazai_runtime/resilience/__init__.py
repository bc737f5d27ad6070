"""Per-upstream protection: circuit breaker, outlier ejection, retry budget (no I/O), and ``Upstream``, which
applies them, with a balancer, to every gRPC call to one service."""

from sutazai_runtime.resilience.breaker import BreakerPolicy, CircuitBreaker
from sutazai_runtime.resilience.budget import RetryBudget
from sutazai_runtime.resilience.outlier import OutlierDetector, OutlierPolicy

__all__ = ["BreakerPolicy", "CircuitBreaker", "OutlierDetector", "OutlierPolicy", "RetryBudget"]
