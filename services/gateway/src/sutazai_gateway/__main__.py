"""``python -m sutazai_gateway``: wiring only.

``SUTAZAI_GATEWAY_WORKERS`` processes serve the port (default 1; 0: one per CPU core). With one, the app
runs in this process. With more, uvicorn's supervisor (this process) binds the port and starts the workers,
each building its own app (``main.create_worker_app``); Prometheus runs in multi-process mode and this
process serves the metrics of all of them on the metrics port."""

import os
import shutil
import tempfile

import uvicorn
from sutazai_runtime.logging import configure_logging
from sutazai_runtime.telemetry import configure_tracing

from sutazai_gateway.config import Settings
from sutazai_gateway.main import create_app
from sutazai_gateway.metrics import MULTIPROC_DIR_ENV, serve_multiprocess_metrics


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "gateway")
    server_options = {
        "host": settings.host, "port": settings.port, "loop": "uvloop", "http": "httptools",
        "log_config": None,  # keep our JSON logging
        "access_log": settings.access_log, "timeout_graceful_shutdown": int(settings.shutdown_grace_s),
        "proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
    workers = settings.worker_count()
    if workers == 1:
        configure_tracing("gateway", settings.telemetry)  # the workers of a supervisor each configure their own
        uvicorn.run(create_app(settings), **server_options)  # type: ignore[arg-type]
        return
    metrics_dir = tempfile.mkdtemp(prefix="sutazai-gateway-metrics-")
    # Wiring, before any worker starts: the workers inherit it and prometheus_client reads it at import.
    os.environ[MULTIPROC_DIR_ENV] = metrics_dir
    try:
        if settings.metrics_port:
            serve_multiprocess_metrics(settings.metrics_port, settings.host, metrics_dir)
        # A worker that does not answer the supervisor's ping within the health-check timeout is killed and
        # replaced; 5 s (uvicorn's default) is too short on a small, busy machine.
        uvicorn.run("sutazai_gateway.main:create_worker_app", factory=True, workers=workers,
                    timeout_worker_healthcheck=30, **server_options)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
