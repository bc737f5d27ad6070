"""The gateway: the ``/api/v1`` REST surface. It authenticates, translates REST to gRPC and protects
itself; it holds no domain logic."""

__version__ = "0.1.0"
