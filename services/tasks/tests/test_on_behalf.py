"""A worker acts for a task's owner with a proof it signs itself (issuer ``tasks-worker``), fresh at each call."""

from __future__ import annotations

import grpc
from sutazai_runtime.identity import IDENTITY_KEY, Identity, IdentitySettings, ProofMinter, ProofVerifier
from sutazai_runtime.identity.keys import load_private_key, load_public_keys
from sutazai_tasks.handlers import BACKGROUND, AgentRunner
from sutazai_tasks.model import WORKER_ISSUER


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_calls_for_an_owner_carry_a_worker_signed_proof_that_is_renewed() -> None:
    settings = IdentitySettings()  # the session's key pair (root conftest)
    assert settings.private_key_file is not None and settings.public_keys_file is not None
    clock = Clock()
    minter = ProofMinter(load_private_key(settings.private_key_file), WORKER_ISSUER, ttl_s=60, clock=clock)
    verifier = ProofVerifier(load_public_keys(settings.public_keys_file), clock=clock)
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never called
    try:
        metadata, background = AgentRunner(channel, channel, minter).on_behalf_of("owner-7")
        first = dict(metadata())[IDENTITY_KEY]
        owner = verifier.verify(first)
        assert owner == Identity("owner-7") and owner.issuer == WORKER_ISSUER and not owner.is_admin
        assert BACKGROUND in background() and dict(background())[IDENTITY_KEY] == first
        clock.now += 31  # past the reuse window: the next call carries a new proof
        second = dict(metadata())[IDENTITY_KEY]
        assert second != first and verifier.verify(second) == owner
        clock.now += 45  # the first one has expired meanwhile; a run never sends it again
        assert dict(metadata())[IDENTITY_KEY] != first
    finally:
        await channel.close()
