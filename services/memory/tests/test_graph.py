"""The knowledge graph, on whichever backend is configured (Neo4j when NEO4J_URI answers, else PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sutazai.memory.v1 import memory_pb2 as m


def props(**values: object) -> bytes:
    return json.dumps(values).encode()


async def entity(c: Any, name: str, type_: str = "person", **properties: object) -> m.UpsertEntityResponse:
    return await c.UpsertEntity(m.UpsertEntityRequest(name=name, type=type_, properties_json=props(**properties)))


async def relate(c: Any, a: str, b: str, type_: str, **kwargs: Any) -> m.Relation:
    return await c.CreateRelation(m.CreateRelationRequest(source_id=a, target_id=b, type=type_, **kwargs))


async def test_upsert_by_name_and_type_merges_properties(memory: Any, user: str) -> None:
    c = memory.client(user)
    first = await entity(c, "Ada Lovelace", role="author")
    again = await entity(c, "Ada Lovelace", born=1815)
    other_type = await entity(c, "Ada Lovelace", "ship")
    assert first.created and not again.created and other_type.created
    assert again.entity.id == first.entity.id
    assert json.loads(again.entity.properties_json) == {"role": "author", "born": 1815}
    assert other_type.entity.id != first.entity.id


async def test_neighbours_to_depth_and_shortest_path(memory: Any, user: str) -> None:
    c = memory.client(user)
    ids = {n: (await entity(c, n)).entity.id for n in ("A", "B", "C", "D", "E")}
    start = Timestamp()
    start.FromDatetime(datetime(2024, 1, 1, tzinfo=UTC))
    r_ab = await relate(c, ids["A"], ids["B"], "knows", valid_from=start)
    await relate(c, ids["B"], ids["C"], "works_with")
    await relate(c, ids["D"], ids["C"], "manages")  # direction does not matter for neighbours and paths
    await relate(c, ids["A"], ids["E"], "knows")
    await relate(c, ids["E"], ids["D"], "knows")
    one = await c.GetEntity(m.GetEntityRequest(id=ids["A"], depth=1))
    assert {e.name for e in one.neighbours} == {"B", "E"}
    two = await c.GetEntity(m.GetEntityRequest(id=ids["A"], depth=2))
    assert {e.name for e in two.neighbours} == {"B", "C", "D", "E"}
    assert {r.type for r in two.relations} >= {"knows", "works_with"}
    assert next(r for r in one.relations if r.id == r_ab.id).valid_from.ToDatetime().year == 2024
    zero = await c.GetEntity(m.GetEntityRequest(id=ids["A"], depth=0))
    assert zero.entity.name == "A" and not zero.neighbours
    path = await c.ShortestPath(m.ShortestPathRequest(from_id=ids["A"], to_id=ids["C"]))
    assert path.found and [e.name for e in path.entities] == ["A", "B", "C"]
    assert [r.type for r in path.relations] == ["knows", "works_with"]
    lonely = (await entity(c, "F")).entity.id
    assert not (await c.ShortestPath(m.ShortestPathRequest(from_id=ids["A"], to_id=lonely))).found
    short = await c.ShortestPath(m.ShortestPathRequest(from_id=ids["A"], to_id=ids["D"], max_depth=1))
    assert not short.found


async def test_deleting_an_entity_removes_its_relations(memory: Any, user: str) -> None:
    c = memory.client(user)
    a, b, x = [(await entity(c, n)).entity.id for n in ("P", "Q", "R")]
    await relate(c, a, b, "likes")
    rel = await relate(c, b, x, "likes")
    gone = await c.DeleteEntity(m.DeleteEntityRequest(id=b))
    assert gone.deleted and gone.relations_removed == 2
    assert not (await c.GetEntity(m.GetEntityRequest(id=a, depth=3))).neighbours
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.DeleteRelation(m.DeleteRelationRequest(id=rel.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    rel2 = await relate(c, a, x, "likes")
    assert (await c.DeleteRelation(m.DeleteRelationRequest(id=rel2.id))).deleted


async def test_graph_data_is_isolated_between_users(memory: Any, user: str, other: str) -> None:
    mine, theirs = memory.client(user), memory.client(other)
    t1 = (await entity(theirs, "Secret Project", "project")).entity.id
    t2 = (await entity(theirs, "Mallory")).entity.id
    rel = await relate(theirs, t1, t2, "owned_by")
    m1 = (await entity(mine, "Secret Project", "project"))
    assert m1.created and m1.entity.id != t1  # the same name for another user is another entity
    calls = [
        (mine.GetEntity, m.GetEntityRequest(id=t1, depth=1)),
        (mine.ShortestPath, m.ShortestPathRequest(from_id=t1, to_id=t2)),
        (mine.ShortestPath, m.ShortestPathRequest(from_id=m1.entity.id, to_id=t2)),
        (mine.CreateRelation, m.CreateRelationRequest(source_id=m1.entity.id, target_id=t2, type="spies_on")),
        (mine.DeleteEntity, m.DeleteEntityRequest(id=t1)),
        (mine.DeleteRelation, m.DeleteRelationRequest(id=rel.id)),
    ]
    for call, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, call
    listed = await mine.ListEntities(m.ListEntitiesRequest(type="project"))
    assert [e.id for e in listed.entities] == [m1.entity.id]
    assert (await theirs.GetEntity(m.GetEntityRequest(id=t1, depth=1))).neighbours[0].id == t2


@pytest.mark.parametrize("request_", [
    m.UpsertEntityRequest(name="", type="person"),
    m.UpsertEntityRequest(name="x", type=""),
    m.UpsertEntityRequest(name="x" * 201, type="person"),
])
async def test_bad_entities_are_refused(memory: Any, user: str, request_: m.UpsertEntityRequest) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await memory.client(user).UpsertEntity(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_relations_and_depths_are_refused(memory: Any, user: str) -> None:
    c = memory.client(user)
    a, b = (await entity(c, "G1")).entity.id, (await entity(c, "G2")).entity.id
    late, early = Timestamp(), Timestamp()
    late.FromDatetime(datetime(2025, 1, 1, tzinfo=UTC))
    early.FromDatetime(datetime(2020, 1, 1, tzinfo=UTC))
    for request, code in [
        (m.CreateRelationRequest(source_id=a, target_id=b, type=""), grpc.StatusCode.INVALID_ARGUMENT),
        (m.CreateRelationRequest(source_id=a, target_id=b, type="t", valid_from=late, valid_to=early),
         grpc.StatusCode.INVALID_ARGUMENT),
        (m.CreateRelationRequest(source_id=a, target_id="not-a-uuid", type="t"), grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await c.CreateRelation(request)
        assert info.value.code() == code
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.GetEntity(m.GetEntityRequest(id=a, depth=9))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await c.ShortestPath(m.ShortestPathRequest(from_id=a, to_id=b, max_depth=50))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_configured_backend_is_reported(memory: Any, user: str) -> None:
    stats = await memory.client(user).GetStats(m.GetStatsRequest())
    expected = "neo4j" if memory.settings.neo4j_uri else "postgres"
    assert stats.graph_backend == expected and stats.vector_backend == "qdrant-edge"
