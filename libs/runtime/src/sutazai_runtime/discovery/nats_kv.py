"""The default registry: a NATS JetStream key-value bucket, one key per instance (``<name>.<id>``).

The bucket's TTL (``ttl_s``, at most 10 s) expires an entry unless its owner's heartbeat (every
``ttl_s / 3``) refreshes it, so a killed instance disappears within its TTL. Every process watches
the bucket (``kv.watchall()``), so a change is seen at once; since a JetStream max-age expiry sends no
event to watchers on every server version, the view also drops an entry locally once it is older
than the TTL. External services (``register_external``) live in a second bucket without a TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue, StopIterSentinel

from sutazai_runtime.discovery.model import Instance
from sutazai_runtime.discovery.registry import Registry

log = logging.getLogger(__name__)

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]")
MAX_TTL_S = 10.0


def key_for(instance: Instance) -> str:
    return f"{_KEY_CHARS.sub('_', instance.name)}.{_KEY_CHARS.sub('_', instance.id)}"


async def ensure_bucket(js: JetStreamContext, bucket: str, ttl_s: float | None) -> KeyValue:
    """The bucket with this TTL, created or brought to it (an older bucket may have another TTL)."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE, ttl=ttl_s or None)
        return await js.create_key_value(config)
    info = await js.stream_info(f"KV_{bucket}")
    wanted = ttl_s or 0.0
    if abs((info.config.max_age or 0.0) - wanted) > 0.001:
        log.info("bucket %s: TTL %s s -> %s s", bucket, info.config.max_age, wanted)
        await js.update_stream(info.config.evolve(max_age=wanted, duplicate_window=min(120.0, wanted or 120.0)))
    return kv


class NatsKvRegistry(Registry):
    kind = "nats"

    def __init__(self, nc: Client, *, bucket: str = "sutazai_registry", ttl_s: float = 6.0,
                 owns_connection: bool = False) -> None:
        super().__init__()
        if not 0 < ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl_s must be in (0, {MAX_TTL_S}]")
        self._nc = nc
        self._js = nc.jetstream(timeout=5.0)
        self.bucket = bucket
        self.external_bucket = f"{bucket}_external"
        self.ttl_s = ttl_s
        self._owns_connection = owns_connection
        self._kv: KeyValue | None = None
        self._ext: KeyValue | None = None
        self._mine: dict[str, Instance] = {}  # what this process keeps alive
        self._expires: dict[str, float] = {}  # instance id -> monotonic time its entry expires locally
        self._last_update = time.monotonic()  # the last entry any watch delivered
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[KeyValue.KeyWatcher] = []

    async def start(self) -> None:
        self._kv = await ensure_bucket(self._js, self.bucket, self.ttl_s)
        self._ext = await ensure_bucket(self._js, self.external_bucket, None)
        loaded = [asyncio.Event(), asyncio.Event()]
        self._tasks = [
            asyncio.create_task(self._watch(self._kv, loaded[0], expiring=True)),
            asyncio.create_task(self._watch(self._ext, loaded[1], expiring=False)),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._expire()),
        ]
        async with asyncio.timeout(10.0):
            await asyncio.gather(*(e.wait() for e in loaded))

    async def _watch(self, kv: KeyValue, loaded: asyncio.Event, *, expiring: bool) -> None:
        """Follow the bucket. A watch that falls silent for longer than entries live (NATS restarted, the
        consumer is gone) is made anew; its replay of the current values then replaces this bucket's view,
        dropping what expired meanwhile."""
        silent_s = self.ttl_s if expiring else 30.0  # live instances beat every TTL/3
        keys: dict[str, str] = {}  # this bucket's KV key -> instance id
        while True:
            try:
                watcher = await kv.watchall()
            except Exception as exc:  # NATS away: try again shortly, keep the last known view
                log.warning("registry watch of %s could not start: %s", kv._name, exc)
                await asyncio.sleep(1.0)
                continue
            self._watchers.append(watcher)
            seen: set[str] | None = set()  # keys replayed by this watch, until its initial values are in
            try:
                while True:
                    try:
                        entry = await watcher.updates(timeout=silent_s)
                    except nats.errors.TimeoutError:
                        if expiring and self._nc.is_connected and not self._expires:
                            continue  # an empty bucket is silent too
                        log.info("registry watch of %s was silent for %.0f s; watching anew", kv._name, silent_s)
                        break
                    if isinstance(entry, StopIterSentinel):  # the watcher was stopped (closing)
                        return
                    if entry is None:  # the initial values are all in: what was not replayed is gone
                        if seen is not None:
                            for key in [k for k in keys if k not in seen]:
                                self._drop(keys.pop(key))
                        seen = None
                        loaded.set()
                        continue
                    self._last_update = time.monotonic()
                    if seen is not None:
                        seen.add(entry.key)
                    self._apply(entry, keys, expiring=expiring)
                    if seen is not None and entry.delta == 0:
                        for key in [k for k in keys if k not in seen]:
                            self._drop(keys.pop(key))
                        seen = None
                        loaded.set()
            finally:
                self._watchers.remove(watcher)
                with contextlib.suppress(Exception):
                    await watcher.stop()

    def _apply(self, entry: KeyValue.Entry, keys: dict[str, str], *, expiring: bool) -> None:
        if entry.operation in ("DEL", "PURGE") or not entry.value:
            instance_id = keys.pop(entry.key, None)
            if instance_id is not None:
                self._drop(instance_id)
            return
        try:
            instance = Instance.decode(entry.value)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed registry entry %s", entry.key)
            return
        keys[entry.key] = instance.id
        if expiring:
            self._expires[instance.id] = time.monotonic() + self.ttl_s - _age_s(entry.created)
        self.view.put(instance)

    def _drop(self, instance_id: str) -> None:
        self._expires.pop(instance_id, None)
        self.view.remove(instance_id)

    async def _expire(self) -> None:
        """Drop entries whose heartbeat stopped (the server's expiry may send no event). Not while NATS is
        unreachable or the watch is silent: then nobody's heartbeat arrives, and the last known instances are the
        best guess."""
        while True:
            await asyncio.sleep(min(1.0, self.ttl_s / 4))
            # a watch silent for half a TTL (heartbeats arrive every third) is not seeing the bucket: keep the
            # view until it is watched anew and its replay says what is gone
            if not self._nc.is_connected or time.monotonic() - self._last_update > self.ttl_s / 2:
                continue
            now = time.monotonic()
            for instance_id, expires in list(self._expires.items()):
                if expires < now and instance_id not in self._mine:
                    self._drop(instance_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            for instance in list(self._mine.values()):
                try:
                    await self._put(instance)
                except Exception as exc:  # NATS away for a moment: the next beat tries again
                    log.warning("registry heartbeat for %s failed: %s", instance.id, exc)

    async def _put(self, instance: Instance) -> None:
        assert self._kv is not None
        await self._kv.put(key_for(instance), instance.encode())

    async def register(self, instance: Instance) -> None:
        self._mine[instance.id] = instance
        await self._put(instance)

    async def set_state(self, instance_id: str, state: str) -> None:
        instance = self._mine.get(instance_id)
        if instance is not None and instance.state != state:
            self._mine[instance_id] = instance.with_state(state)
            await self._put(self._mine[instance_id])

    async def register_external(self, instance: Instance) -> None:
        """An instance that is not ours (the mesh API's register): kept until deregistered."""
        assert self._ext is not None
        await self._ext.put(key_for(instance), instance.encode())

    async def deregister(self, instance_id: str) -> bool:
        assert self._kv is not None and self._ext is not None
        # what this process registered is known without its own watch having delivered it yet (a deregistration
        # right after the registration, or under load, found the view still empty and kept the entry)
        mine = self._mine.pop(instance_id, None)
        instance = mine or self.view.find(instance_id)
        if instance is None:
            return False
        bucket = self._ext if mine is None and instance.external else self._kv
        with contextlib.suppress(KeyNotFoundError):
            await bucket.delete(key_for(instance))
        self.view.remove(instance_id)
        return True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for watcher in list(self._watchers):
            with contextlib.suppress(Exception):
                await watcher.stop()
        self._mine.clear()
        if self._owns_connection:
            with contextlib.suppress(Exception):
                await self._nc.close()


def _age_s(created: object) -> float:
    if isinstance(created, datetime):
        stamp = created if created.tzinfo else created.replace(tzinfo=UTC)
        return max(0.0, (datetime.now(UTC) - stamp).total_seconds())
    return 0.0
