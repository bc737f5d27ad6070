"""``python -m sutazai_gateway``: wiring only."""

import uvicorn
from sutazai_runtime.logging import configure_logging

from sutazai_gateway.config import Settings
from sutazai_gateway.main import create_app


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,  # keep our JSON logging
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )


if __name__ == "__main__":
    main()
