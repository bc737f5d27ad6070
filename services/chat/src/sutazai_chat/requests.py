"""Requests as the domain sees them, and their validation: nothing invalid reaches a model server."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sutazai_chat.backends import Params
from sutazai_chat.errors import InvalidRequestError

ROLES = frozenset({"system", "user", "assistant"})
MAX_TOKENS_LIMIT = 32_768


@dataclass(frozen=True, slots=True)
class Limits:
    max_prompt_chars: int
    max_messages: int
    default_max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str  # as the caller named it (an alias resolves later)
    messages: tuple[dict[str, str], ...]
    params: Params = field(default_factory=Params)
    use_cache: bool = False
    background: bool = False  # task work (metadata sutazai-priority: background): served after interactive calls


@dataclass(slots=True)
class Reply:
    response: str
    model: str
    backend: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: float
    finish_reason: str = "stop"
    cached: bool = False
    ttft_ms: float = 0.0
    generated_rate: float | None = None  # a cached reply keeps the rate at which it was generated

    @property
    def tokens_per_second(self) -> float:
        if self.generated_rate is not None:
            return self.generated_rate
        generating_s = (self.duration_ms - self.ttft_ms) / 1000
        if self.completion_tokens <= 1 or generating_s <= 0:
            return 0.0
        return round((self.completion_tokens - 1) / generating_s, 2)


def build_call(
    limits: Limits, *, model: str, messages: Iterable[tuple[str, str]], system: str = "",
    temperature: float | None = None, max_tokens: int | None = None, seed: int | None = None,
    use_cache: bool = False,
) -> ChatCall:
    """Validate a chat request and turn it into a ``ChatCall``; raise InvalidRequestError naming the problem."""
    listed = [{"role": role or "user", "content": content} for role, content in messages]
    if system:
        listed.insert(0, {"role": "system", "content": system})
    for i, m in enumerate(listed):
        if m["role"] not in ROLES:
            raise InvalidRequestError(f"message {i} has role {m['role']!r}; use one of {sorted(ROLES)}")
    if not any(m["role"] == "user" for m in listed):
        raise InvalidRequestError("the request has no user message: send a non-empty 'message' or 'messages'")
    if len(listed) > limits.max_messages:
        raise InvalidRequestError(f"too many messages: {len(listed)} (the limit is {limits.max_messages})")
    last_user = [m for m in listed if m["role"] == "user"][-1]
    if not last_user["content"].strip():
        raise InvalidRequestError("the message is empty")
    size = sum(len(m["content"]) for m in listed)
    if size > limits.max_prompt_chars:
        raise InvalidRequestError(
            f"the prompt is {size} characters; the limit is {limits.max_prompt_chars}"
        )
    if temperature is not None and not 0 <= temperature <= 2:
        raise InvalidRequestError(f"temperature must be between 0 and 2, not {temperature}")
    if max_tokens is not None and not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidRequestError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, not {max_tokens}")
    if max_tokens is None:
        max_tokens = limits.default_max_tokens
    return ChatCall(model=model, messages=tuple(listed), use_cache=use_cache,
                    params=Params(temperature=temperature, max_tokens=max_tokens, seed=seed))
