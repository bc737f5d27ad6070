"""State changes against the real PostgreSQL: each is guarded, so repeats change nothing."""

import asyncio
import uuid

from sutazai_tasks.coalesce import CreateCoalescer
from sutazai_tasks.model import NewTask
from sutazai_tasks.store import TaskStore


def _task(owner: str | None = None, **fields):  # type: ignore[no-untyped-def]
    return NewTask(owner_id=owner or f"owner-{uuid.uuid4().hex[:8]}", task_type="echo", payload_json='{"n": 1}',
                   **fields)


async def test_the_same_idempotency_key_from_the_same_owner_returns_the_same_task(store: TaskStore) -> None:
    first, created = await store.create(_task("alice-x", idempotency_key="k1-" + uuid.uuid4().hex))
    again, created_again = await store.create(
        _task("alice-x", idempotency_key=first.idempotency_key, priority=99)
    )
    assert created and not created_again
    assert again.id == first.id and again.priority == first.priority
    other, created_other = await store.create(_task("bob-x", idempotency_key=first.idempotency_key))
    assert created_other and other.id != first.id


async def test_a_result_is_recorded_once(store: TaskStore) -> None:
    task, _ = await store.create(_task())
    [claimed] = await store.claim([task.id], [])
    assert claimed.status == "running" and claimed.attempts == 1
    assert await store.claim([task.id], []) == []  # a duplicate message cannot claim it again
    assert await store.complete([(task.id, '{"out": 1}')]) == {task.id}
    assert await store.complete([(task.id, '{"out": 2}')]) == set()
    assert await store.claim([], [task.id]) == []  # nor can a redelivery of a finished task
    done = await store.get(task.id)
    assert done is not None
    assert (done.status, done.result(), done.completions) == ("completed", {"out": 1}, 1)


async def test_a_redelivery_takes_over_a_task_whose_worker_died(store: TaskStore) -> None:
    task, _ = await store.create(_task())
    await store.claim([task.id], [])  # the worker that claimed it dies before acknowledging
    assert await store.claim([task.id], []) == []
    [taken] = await store.claim([], [task.id])
    assert taken.attempts == 2


async def test_owners_see_only_their_tasks(store: TaskStore) -> None:
    task, _ = await store.create(_task("carol-x"))
    assert await store.get(task.id, "carol-x") is not None
    assert await store.get(task.id, "mallory") is None
    rows, total = await store.list(owner_id="carol-x", status="queued", limit=100, offset=0)
    assert task.id in {r.id for r in rows} and total >= 1


async def test_cancel_only_unfinished_tasks_and_their_children(store: TaskStore) -> None:
    parent, _ = await store.create(_task("dan-x"))
    child, _ = await store.create(_task("dan-x", parent_id=parent.id))
    cancelled, before, running_children = await store.cancel(parent.id, "dan-x")
    assert running_children == []
    assert cancelled is not None and (cancelled.status, before) == ("cancelled", "queued")
    assert (await store.get(child.id)).status == "cancelled"  # type: ignore[union-attr]
    again, before_again, _ = await store.cancel(parent.id, "dan-x")
    assert again is not None and before_again == "cancelled"
    assert await store.claim([parent.id], []) == []  # a cancelled task never runs
    assert await store.cancel(parent.id, "eve") == (None, None, [])


async def test_retry_dead_and_replay(store: TaskStore) -> None:
    task, _ = await store.create(_task(max_attempts=2))
    await store.claim([task.id], [])
    assert await store.finish_unsuccessfully(task.id, "retrying", "boom")
    assert not await store.finish_unsuccessfully(task.id, "dead", "not running")  # guarded
    await store.claim([], [task.id])
    assert await store.finish_unsuccessfully(task.id, "dead", "boom again")
    replayed = await store.replay(task.id)
    assert replayed is not None and (replayed.status, replayed.attempts, replayed.replays) == ("queued", 0, 1)
    assert await store.replay(task.id) is None  # only dead or failed tasks


async def test_bulk_creation_keeps_order_and_idempotency(store: TaskStore) -> None:
    owner = f"bulk-{uuid.uuid4().hex[:8]}"
    earlier, _ = await store.create(_task(owner, idempotency_key="seen"))
    batch = [_task(owner, idempotency_key="seen"), _task(owner), _task(owner, idempotency_key="twice"),
             _task(owner, idempotency_key="twice")]
    results = await store.create_many(batch)
    assert [created for _, created in results] == [False, True, True, False]
    assert results[0][0].id == earlier.id
    assert results[3][0].id == results[2][0].id  # a key repeated inside one batch is one task
    assert results[1][0].status == "queued"
    _, total = await store.list(owner_id=owner, status=None, limit=10, offset=0)
    assert total == 3


async def test_concurrent_creations_are_coalesced_yet_each_gets_its_own_task(store: TaskStore) -> None:
    coalescer = CreateCoalescer(store, max_batch=7)
    owner = f"co-{uuid.uuid4().hex[:8]}"
    tasks = [_task(owner, idempotency_key=f"k{i % 15}") for i in range(30)]  # every key twice
    results = await asyncio.gather(*(coalescer.create(t) for t in tasks))
    ids = [row.id for row, _ in results]
    assert ids[:15] == ids[15:]  # the same key gives the same task, across batches too
    assert sum(created for _, created in results) == 15
    _, total = await store.list(owner_id=owner, status=None, limit=100, offset=0)
    assert total == 15


async def test_a_released_claim_gives_its_attempt_back(store: TaskStore) -> None:
    task, _ = await store.create(_task(max_attempts=3))
    await store.claim([task.id], [])
    assert await store.release([task.id]) == {task.id}
    back = await store.get(task.id)
    assert back is not None and (back.status, back.attempts, back.started_at) == ("queued", 0, None)
    assert await store.release([task.id]) == set()  # only a running task can be released
    # After a real failure, a released claim goes back to retrying and keeps the failed attempt.
    [claimed] = await store.claim([], [task.id])
    assert await store.finish_unsuccessfully(task.id, "retrying", "boom")
    [again] = await store.claim([], [task.id])
    assert again.attempts == 2
    assert await store.release([task.id]) == {task.id}
    back = await store.get(task.id)
    assert back is not None and (back.status, back.attempts, back.error) == ("retrying", 1, "boom")
    assert back.started_at == claimed.started_at  # when the failed attempt started
