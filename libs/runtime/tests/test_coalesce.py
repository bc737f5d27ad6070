"""Natural batching: a lone call goes at once; calls arriving while a batch is in flight go together; each
caller gets its own result, or its own error (``Failed``); a failing batch fails each of its callers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sutazai_runtime.coalesce import Coalescer, Failed


async def test_calls_arriving_during_a_batch_go_together_and_each_gets_its_own_answer() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def run(items: Sequence[int]) -> list[object]:
        batches.append(list(items))
        if len(batches) == 1:
            await release.wait()  # the first call stays in flight while the others arrive
        return [Failed(ValueError(f"bad {i}")) if i < 0 else i * 10 for i in items]

    coalescer: Coalescer[int, int] = Coalescer(run, max_batch=3)
    first = asyncio.create_task(coalescer.submit(1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(coalescer.submit(i)) for i in (2, -3, 4, 5)]
    await asyncio.sleep(0)
    assert not coalescer.idle
    release.set()
    assert await first == 10
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert results[0] == 20 and results[2:] == [40, 50]
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad -3"
    assert batches == [[1], [2, -3, 4], [5]]  # at most max_batch per call
    assert coalescer.idle


async def test_a_failing_batch_fails_each_caller_and_the_next_batch_still_runs() -> None:
    calls = 0

    async def run(items: Sequence[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if "boom" in items:
            raise ConnectionError("down")
        return [i.upper() for i in items]

    coalescer: Coalescer[str, str] = Coalescer(run)
    with pytest.raises(ConnectionError):
        await coalescer.submit("boom")
    assert await coalescer.submit("ok") == "OK" and calls == 2
