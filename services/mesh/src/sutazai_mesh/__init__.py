"""Mesh service: service registry and discovery (NATS KV by default, Consul when configured)."""
