"""``infer: true``: one model call per conversation for its facts, as JSON. The reply is parsed
strictly; anything but a JSON list of strings (bare, or under ``"facts"``) is refused with a reason, so
the caller learns that nothing was stored rather than getting whatever a small model made up."""

from __future__ import annotations

import json
import re

SYSTEM = (
    "You extract facts worth remembering from a conversation. Answer with JSON only, no prose: "
    '{"facts": ["<one short fact>", ...]}. Each fact is one self-contained sentence. '
    'When there is nothing worth remembering, answer {"facts": []}.'
)
MAX_FACTS = 20
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class InvalidFacts(ValueError):
    """The model's reply is not the JSON we asked for; the message says why."""


def prompt(conversation: str) -> str:
    return f"Conversation:\n{conversation}\n\nFacts as JSON:"


def parse_facts(reply: str) -> list[str]:
    text = reply.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidFacts(f"the model's reply is not valid JSON ({exc.msg} at {exc.pos})") from None
    facts = data.get("facts") if isinstance(data, dict) else data
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise InvalidFacts('the model\'s JSON is not {"facts": [strings]}')
    cleaned = [f.strip() for f in facts if f.strip()]
    return cleaned[:MAX_FACTS]
