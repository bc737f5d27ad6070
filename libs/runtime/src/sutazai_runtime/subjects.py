"""NATS subjects more than one service uses, named in one place. Each carries the stack's registry bucket, so
stacks sharing a NATS server (tests, benchmarks) do not hear each other."""

from __future__ import annotations


def agents_changed(bucket: str) -> str:
    """Published by the agents service when its definition files changed (hot reload); the gateway drops its
    cached agents on it."""
    return f"sutazai.{bucket}.agents.changed"
