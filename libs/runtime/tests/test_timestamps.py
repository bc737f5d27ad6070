"""The hand-made Timestamp conversions give exactly what protobuf's own give, on times that matter (naive and
aware, other offsets, before 1970, the ends of the range, nanoseconds that truncate)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from sutazai.memory.v1 import memory_pb2
from sutazai_runtime.timestamps import iso_of, set_timestamp, to_datetime, to_timestamp

TIMES = [
    datetime(2026, 12, 6, 14, 42, 31, 973054, tzinfo=UTC), datetime(2026, 12, 6, 14, 42, 31),
    datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2020, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
    datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC), datetime(1970, 1, 1), datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
]


def _theirs(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def test_datetime_to_timestamp_as_protobuf_does() -> None:
    for value in TIMES:
        ours, theirs = to_timestamp(value), _theirs(value)
        assert ours is not None and (ours.seconds, ours.nanos) == (theirs.seconds, theirs.nanos), value
        filled = Timestamp()
        set_timestamp(filled, value)
        assert filled == theirs
    assert to_timestamp(None) is None


def test_timestamp_to_datetime_and_iso_as_protobuf_does() -> None:
    rng = random.Random(3)
    stamps = [_theirs(v) for v in TIMES] + [
        Timestamp(seconds=rng.randrange(-62135596800, 253402300799), nanos=rng.randrange(10**9)) for _ in range(500)]
    for stamp in stamps:
        assert to_datetime(stamp) == stamp.ToDatetime()
        memory = memory_pb2.Memory(created_at=stamp)
        assert iso_of(memory, "created_at") == stamp.ToDatetime().isoformat() + "Z"
    assert iso_of(memory_pb2.Memory(), "created_at") is None  # not set
