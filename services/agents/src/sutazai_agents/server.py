"""gRPC servicer of the agent registry. The RPCs arrive with issue #4 (agents and tasks)."""

from sutazai.agents.v1 import agents_pb2, agents_pb2_grpc
from sutazai_runtime.unimplemented import placeholder_servicer

SERVICE = agents_pb2.DESCRIPTOR.services_by_name["AgentService"]


class AgentServicer(
    placeholder_servicer(agents_pb2_grpc.AgentServiceServicer, SERVICE, "issue #4: agents and tasks")  # type: ignore[misc]
):
    """Every RPC answers UNIMPLEMENTED until the registry lands."""
