from datetime import UTC, datetime

from fastapi import APIRouter

from sutazai_gateway import __version__

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
}


@router.get("/")
async def root() -> dict[str, object]:
    return {
        "message": "SutazAI platform API",
        "version": __version__,
        "status": "running",
        "features": FEATURES,
        "docs": "/docs",
        "timestamp": datetime.now(UTC).isoformat(),
    }
