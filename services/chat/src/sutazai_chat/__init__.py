"""Chat service: every model call in the platform (Redis for the response cache)."""
