"""gRPC servicer of the chat context. Model calls arrive with issue #3 (chat and models)."""

from sutazai.chat.v1 import chat_pb2, chat_pb2_grpc
from sutazai_runtime.unimplemented import placeholder_servicer

SERVICE = chat_pb2.DESCRIPTOR.services_by_name["ChatService"]


class ChatServicer(
    placeholder_servicer(chat_pb2_grpc.ChatServiceServicer, SERVICE, "issue #3: chat and models")  # type: ignore[misc]
):
    """Every RPC answers UNIMPLEMENTED until the chat issue lands."""
