"""gRPC servicer of the mesh. Registration, discovery and enqueue arrive with a later mesh issue."""

from sutazai.mesh.v1 import mesh_pb2, mesh_pb2_grpc
from sutazai_runtime.unimplemented import placeholder_servicer

SERVICE = mesh_pb2.DESCRIPTOR.services_by_name["MeshService"]


class MeshServicer(
    placeholder_servicer(mesh_pb2_grpc.MeshServiceServicer, SERVICE, "a later mesh issue")  # type: ignore[misc]
):
    """Every RPC answers UNIMPLEMENTED until discovery lands."""
