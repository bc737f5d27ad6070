"""gRPC servicer of the memory context. Vectors, documents and the graph arrive with a later issue."""

from sutazai.memory.v1 import memory_pb2, memory_pb2_grpc
from sutazai_runtime.unimplemented import placeholder_servicer

SERVICE = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"]


class MemoryServicer(
    placeholder_servicer(memory_pb2_grpc.MemoryServiceServicer, SERVICE, "a later memory issue")  # type: ignore[misc]
):
    """Every RPC answers UNIMPLEMENTED until memory lands."""
