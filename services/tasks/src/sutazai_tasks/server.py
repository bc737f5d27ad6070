"""gRPC servicer of the task context. The RPCs arrive with issue #4 (agents and tasks)."""

from sutazai.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from sutazai_runtime.unimplemented import placeholder_servicer

SERVICE = tasks_pb2.DESCRIPTOR.services_by_name["TaskService"]


class TaskServicer(
    placeholder_servicer(tasks_pb2_grpc.TaskServiceServicer, SERVICE, "issue #4: agents and tasks")  # type: ignore[misc]
):
    """Every RPC answers UNIMPLEMENTED until the task lifecycle lands."""
