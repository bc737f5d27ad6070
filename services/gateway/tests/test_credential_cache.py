"""The cache of verified credentials: a TTL, never past the credential's own expiry, bounded, revocable."""

from sutazai_gateway.auth.cache import CredentialCache
from sutazai_runtime.identity import Identity

ALICE = Identity("alice")
BOB = Identity("bob", frozenset({"admin", "user"}))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_the_ttl_and_no_longer() -> None:
    clock = Clock()
    cache = CredentialCache(10.0, clock=clock)
    cache.put("key-a", ALICE)
    clock.now += 9.9
    assert cache.get("key-a") == ALICE
    clock.now += 0.2
    assert cache.get("key-a") is None
    assert len(cache) == 0  # an expired entry is dropped when seen


def test_a_credential_that_expires_sooner_is_kept_only_until_then_and_an_expired_one_not_at_all() -> None:
    clock = Clock()
    cache = CredentialCache(10.0, clock=clock)
    cache.put("token", ALICE, valid_for_s=2.0)
    clock.now += 2.5
    assert cache.get("token") is None
    cache.put("expired-token", ALICE, valid_for_s=-1.0)
    assert cache.get("expired-token") is None and len(cache) == 0


def test_it_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = CredentialCache(60.0, max_entries=2)
    cache.put("a", ALICE)
    cache.put("b", BOB)
    assert cache.get("a") == ALICE  # "b" is now the least recently used
    cache.put("c", ALICE)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") == ALICE and cache.get("c") == ALICE


def test_forgetting_a_prefix_drops_only_those_keys_and_a_zero_ttl_caches_nothing() -> None:
    cache = CredentialCache(60.0)
    cache.put("sk-sutazai-aaaaaaaa-1", ALICE)
    cache.put("sk-sutazai-bbbbbbbb-2", BOB)
    cache.forget_prefix("sk-sutazai-aaaaaaaa-")
    assert cache.get("sk-sutazai-aaaaaaaa-1") is None
    assert cache.get("sk-sutazai-bbbbbbbb-2") == BOB
    off = CredentialCache(0.0)
    off.put("x", ALICE)
    assert off.get("x") is None
