"""``python -m sutazai_runtime.healthcheck TARGET``: exit 0 when TARGET is healthy, 1 otherwise.

For container health checks (compose ``healthcheck``, a Docker ``HEALTHCHECK``) in images that hold no
``grpc_health_probe`` or ``curl``. TARGET is ``grpc://host:port`` (the stock ``grpc.health.v1`` check of
the whole server must answer ``SERVING``) or an ``http://`` URL (any 2xx answer). Kubernetes uses its
native ``grpc:`` and ``httpGet:`` probes instead.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, timeout_s: float) -> str | None:
    """None when healthy, else why not."""
    try:
        if target.startswith("grpc://"):
            with grpc.insecure_channel(target.removeprefix("grpc://")) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            return None
        if target.startswith(("http://", "https://")):
            with urllib.request.urlopen(target, timeout=timeout_s) as response:
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        return f"unknown target {target!r} (want grpc://host:port or http://...)"
    except (grpc.RpcError, OSError) as exc:
        return str(exc.code() if isinstance(exc, grpc.RpcError) else exc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sutazai_runtime.healthcheck", description=__doc__)
    parser.add_argument("target")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    args = parser.parse_args(argv)
    problem = check(args.target, args.timeout)
    if problem is not None:
        sys.stderr.write(f"unhealthy: {problem}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
