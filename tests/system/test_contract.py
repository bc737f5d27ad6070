"""The OpenAPI contract says what the routes do: schemathesis against a running stack.

Every operation in the stack's ``/openapi.json`` is exercised (new routes are covered as they land)
except the model calls in ``MODEL_CALLS``, with an admin API key, checking that no request gets a 5xx,
and that each status code, content type and body is one the operation declares. Bounded: a few
examples per operation (``SUTAZAI_CONTRACT_EXAMPLES``, default 12), no shrinking, a timeout per request.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.system.stack_runner import RunningStack, Servers, run_stack

pytestmark = pytest.mark.system

# Routes that call a model (slow on 2 cores, and not what this test is about): chat and its kin, the
# OpenAI (/v1/*) and Ollama (/api/* outside /api/v1) compatible surfaces, orchestration. Agent tasks
# and memory writes that ask the model (infer, extract_graph) are left out below by their body; the memory
# routes themselves are tested (they embed through the local embeddings server, which is fast enough).
MODEL_CALLS = re.compile(r"^/v1/|^/api/(?!v1/)|^/api/v1/(chat|generate|batch|analyze|orchestrate)(/|$)")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("SUTAZAI_CONTRACT_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_servers: Servers) -> Iterator[RunningStack]:
    with run_stack(tmp_path_factory.mktemp("contract"), stack_servers) as running:
        yield running


def _calls_a_model(case: Any) -> bool:
    """An agent task, or a memory write that asks the model (``infer`` / ``extract_graph``)."""
    if not isinstance(case.body, dict):
        return False
    bodies = case.body.get("tasks", [case.body])
    return (any(isinstance(b, dict) and b.get("task_type") == "agent" for b in bodies)
            or bool(case.body.get("infer")) or bool(case.body.get("extract_graph")))


def _check(operation: Any, stack: RunningStack, calls: Counter[str]) -> str | None:
    """Run the operation's examples (counting them in ``calls``); the first failure as text, or None."""
    failure: list[str] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        assume(not _calls_a_model(case))
        calls[operation.label] += 1
        try:
            case.call_and_validate(base_url=stack.url, headers=stack.admin_headers, checks=CHECKS, timeout=15)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
            failure.append(f"{operation.label}: {exc}")
            raise

    try:
        run()
    except (Exception, BaseExceptionGroup):
        return failure[0] if failure else f"{operation.label}: no example could be generated"
    return None


def test_every_route_but_the_model_calls_answers_as_its_openapi_entry_declares(stack: RunningStack) -> None:
    document = httpx.get(stack.url + "/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    tested = [op for op in operations if not MODEL_CALLS.search(op.path)]
    assert len(tested) >= 25 and len(tested) < len(operations)  # the exclusion list does not swallow all
    calls: Counter[str] = Counter()
    failures = [f for f in (_check(op, stack, calls) for op in tested) if f]
    assert failures == [], "\n\n".join(failures)
    assert {op.label for op in tested if not calls[op.label]} == set()  # each one really called
