from datetime import UTC, datetime

from fastapi import APIRouter

from sutazai_gateway import __version__
from sutazai_gateway.api.deps import StateDep

router = APIRouter(tags=["root"])

# What works today. Each flips to True when its issue lands; clients can rely on what they read here.
FEATURES = {
    "health_monitoring": True,
    "grpc_services": True,
    "agents": True,
    "tasks": True,
    "chat": True,
    "memory": True,
    "mesh": True,
    "authentication": True,
    "signed_service_identity": True,  # services trust only identities the gateway or a worker signed
    "problem_details": True,
    "request_ids": True,
    "body_size_limits": True,
    "gzip": True,
}


@router.get("/")
async def root(state: StateDep) -> dict[str, object]:
    settings = state.settings
    return {
        "message": "SutazAI platform API",
        "version": __version__,
        "status": "running",
        # and what this deployment has switched on
        "features": {**FEATURES, "gzip": settings.gzip_minimum_bytes > 0,
                     "rate_limiting": settings.rate_limit_enabled, "api_cache": settings.api_cache_ttl_s > 0,
                     "cors": bool(settings.cors_origins)},
        "docs": "/docs",
        "timestamp": datetime.now(UTC).isoformat(),
    }
