"""Identity proofs: minting, verifying (expiry, keys, tampering, caches), key files, settings, and the server
interceptor on a real grpc.aio server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sutazai_runtime.identity import (
    IDENTITY_KEY,
    ROLES_KEY,
    USER_ID_KEY,
    Identity,
    IdentityConfigError,
    IdentityInterceptor,
    IdentitySettings,
    InvalidProofError,
    ProofMinter,
    ProofVerifier,
    current_caller,
    require_admin,
)
from sutazai_runtime.identity.keys import KeyFileError, ensure_key_pair, load_public_keys, public_pem


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


ADMIN = Identity("u-1", frozenset({"admin", "user"}))


def _pair(clock: Clock, ttl_s: float = 60.0) -> tuple[ProofMinter, ProofVerifier]:
    key = Ed25519PrivateKey.generate()
    return (ProofMinter(key, "gateway", ttl_s=ttl_s, clock=clock),
            ProofVerifier([key.public_key()], leeway_s=0, clock=clock))


def test_a_minted_proof_verifies_to_the_same_identity_with_its_issuer() -> None:
    clock = Clock()
    minter, verifier = _pair(clock)
    attached = minter.attach(ADMIN)
    got = verifier.verify(attached.proof)
    assert got == ADMIN and got.roles == ADMIN.roles and got.issuer == "gateway" and got.proof == attached.proof
    assert attached.to_metadata() == ((IDENTITY_KEY, attached.proof),)
    assert Identity("u-2").to_metadata() == ()  # no proof: nothing is sent, never bare metadata


def test_an_expired_proof_is_refused_also_when_it_was_cached() -> None:
    clock = Clock()
    minter, verifier = _pair(clock, ttl_s=60)
    token = minter.attach(ADMIN).proof
    assert verifier.verify(token) == ADMIN
    clock.now += 61
    with pytest.raises(InvalidProofError, match="expired"):
        verifier.verify(token)
    assert len(verifier) == 0


def test_a_proof_signed_by_an_unknown_key_is_refused() -> None:
    clock = Clock()
    _, verifier = _pair(clock)
    stranger = ProofMinter(Ed25519PrivateKey.generate(), "gateway", clock=clock)
    with pytest.raises(InvalidProofError, match="does not trust"):
        verifier.verify(stranger.mint("u-1", ["admin"]))


def test_a_forged_kid_does_not_help_a_foreign_key() -> None:
    clock = Clock()
    minter, verifier = _pair(clock)
    claims = {"sub": "u-1", "roles": ["admin"], "iss": "gateway", "aud": "sutazai", "iat": int(clock.now),
              "exp": int(clock.now) + 60}
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": minter.kid})
    with pytest.raises(InvalidProofError, match="Signature verification failed"):
        verifier.verify(forged)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_roles_break_the_signature() -> None:
    clock = Clock()
    minter, verifier = _pair(clock)
    token = minter.mint("u-9", ["user"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin", "user"]
    with pytest.raises(InvalidProofError, match="Signature verification failed"):
        verifier.verify(".".join((header, _b64(claims), signature)))
    assert verifier.verify(token).roles == frozenset({"user"})


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "x" * 5000])
def test_garbage_is_refused(token: str) -> None:
    _, verifier = _pair(Clock())
    with pytest.raises(InvalidProofError):
        verifier.verify(token)


def test_an_hs256_token_made_with_the_public_key_is_refused() -> None:
    # The classic algorithm confusion: only EdDSA is accepted, whatever the header says.
    clock = Clock()
    minter, verifier = _pair(clock)
    claims = {"sub": "u-1", "roles": ["admin"], "iss": "gateway", "aud": "sutazai", "iat": int(clock.now),
              "exp": int(clock.now) + 60}
    signing_input = _b64({"alg": "HS256", "typ": "JWT", "kid": minter.kid}) + "." + _b64(claims)
    mac = hmac.new(public_pem(minter.public_key).encode(), signing_input.encode(), hashlib.sha256).digest()
    token = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    with pytest.raises(InvalidProofError):
        verifier.verify(token)


def test_wrong_audience_missing_claims_and_long_lifetimes_are_refused() -> None:
    clock = Clock()
    key = Ed25519PrivateKey.generate()
    minter = ProofMinter(key, "gateway", clock=clock)
    verifier = ProofVerifier([key.public_key()], leeway_s=0, max_lifetime_s=120, clock=clock)
    now = int(clock.now)

    def signed(**claims: object) -> str:
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": minter.kid})

    base = {"sub": "u", "roles": ["user"], "iss": "gateway", "aud": "sutazai", "iat": now, "exp": now + 60}
    with pytest.raises(InvalidProofError, match=r"(?i)audience"):
        verifier.verify(signed(**{**base, "aud": "elsewhere"}))
    without_iss = {k: v for k, v in base.items() if k != "iss"}
    with pytest.raises(InvalidProofError, match="iss"):
        verifier.verify(signed(**without_iss))
    with pytest.raises(InvalidProofError, match="roles"):
        verifier.verify(signed(**{**base, "roles": "admin"}))
    with pytest.raises(InvalidProofError, match="longer"):
        verifier.verify(signed(**{**base, "exp": now + 3600}))
    assert verifier.verify(signed(**base)) == Identity("u")


def test_the_minter_reuses_a_proof_for_half_its_life_then_mints_anew() -> None:
    clock = Clock()
    minter, verifier = _pair(clock, ttl_s=60)
    first = minter.attach(ADMIN).proof
    clock.now += 29
    assert minter.attach(ADMIN).proof == first
    assert minter.attach(Identity("u-1")).proof != first  # other roles: another identity
    clock.now += 2
    second = minter.attach(ADMIN).proof
    assert second != first
    assert verifier.verify(first) == verifier.verify(second) == ADMIN  # the old one is still valid


def test_the_verifier_caches_verified_proofs_in_a_bounded_lru() -> None:
    clock = Clock()
    key = Ed25519PrivateKey.generate()
    minter = ProofMinter(key, "gateway", clock=clock)
    verifier = ProofVerifier([key.public_key()], max_entries=2, clock=clock)
    tokens = [minter.mint(f"u-{i}", ["user"]) for i in range(3)]
    for token in tokens:
        verifier.verify(token)
    assert len(verifier) == 2
    # A cached token is answered without cryptography: the cached identity object itself comes back.
    assert verifier.verify(tokens[2]) is verifier.verify(tokens[2])


def test_several_trusted_keys_verify_each_others_proofs_for_rotation() -> None:
    clock = Clock()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = ProofVerifier([old.public_key(), new.public_key()], clock=clock)
    for key, issuer in ((old, "gateway"), (new, "tasks-worker")):
        assert verifier.verify(ProofMinter(key, issuer, clock=clock).mint("u", ["user"])).issuer == issuer


def test_key_files_are_made_once_private_key_0600(tmp_path: Path) -> None:
    private, public = ensure_key_pair(tmp_path / "keys")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    before = private.read_bytes()
    assert ensure_key_pair(tmp_path / "keys") == (private, public) and private.read_bytes() == before
    other_private, other_public = ensure_key_pair(tmp_path / "other")
    both = tmp_path / "both.pem"
    both.write_text(public.read_text() + other_public.read_text())
    assert len(load_public_keys(both)) == 2
    settings = IdentitySettings(public_keys_file=both, private_key_file=other_private)
    assert settings.minter("tasks-worker").kid in settings.verifier().key_ids


def test_settings_say_clearly_what_is_missing_or_wrong(tmp_path: Path) -> None:
    with pytest.raises(IdentityConfigError, match="SUTAZAI_IDENTITY_PUBLIC_KEYS_FILE is not set"):
        IdentitySettings(public_keys_file=None).verifier()
    with pytest.raises(IdentityConfigError, match="SUTAZAI_IDENTITY_PRIVATE_KEY_FILE is not set"):
        IdentitySettings(private_key_file="").minter("gateway")
    with pytest.raises(IdentityConfigError, match="cannot read"):
        IdentitySettings(public_keys_file=tmp_path / "nope.pem").verifier()
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(IdentityConfigError, match="no '-----BEGIN PUBLIC KEY-----' block"):
        IdentitySettings(public_keys_file=tmp_path / "bad.pem").verifier()
    private, _ = ensure_key_pair(tmp_path / "a")
    _, foreign_public = ensure_key_pair(tmp_path / "b")
    with pytest.raises(IdentityConfigError, match="not among the trusted public keys"):
        IdentitySettings(public_keys_file=foreign_public, private_key_file=private).minter("gateway")
    with pytest.raises(KeyFileError):
        load_public_keys(tmp_path / "missing.pem")


# --- the interceptor on a real server ------------------------------------------------------------------------


async def _who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    caller = current_caller()
    return (caller.user_id + "|" + ",".join(sorted(caller.roles))).encode() if caller else b"nobody"


async def _admin_only(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return (await require_admin(context)).user_id.encode()


async def _who_stream(request: bytes, context: grpc.aio.ServicerContext) -> object:
    for _ in range(2):
        yield await _who(request, context)


@contextlib.asynccontextmanager
async def _server(verifier: ProofVerifier) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[IdentityInterceptor(verifier)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Who", {
        "Who": grpc.unary_unary_rpc_method_handler(_who),
        "Admin": grpc.unary_unary_rpc_method_handler(_admin_only),
        "WhoStream": grpc.unary_stream_rpc_method_handler(_who_stream),
    })])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code()


async def test_the_interceptor_admits_valid_proofs_and_refuses_forged_identity() -> None:
    clock = Clock(__import__("time").time())
    key = Ed25519PrivateKey.generate()
    minter = ProofMinter(key, "gateway")
    verifier = ProofVerifier([key.public_key()])
    async with _server(verifier) as channel:
        who = channel.unary_unary("/test.Who/Who")
        admin = channel.unary_unary("/test.Who/Admin")
        stream = channel.unary_stream("/test.Who/WhoStream")
        assert await who(b"", timeout=5) == b"nobody"
        assert await who(b"", metadata=minter.metadata(ADMIN), timeout=5) == b"u-1|admin,user"
        assert await admin(b"", metadata=minter.metadata(ADMIN), timeout=5) == b"u-1"
        assert [r async for r in stream(b"", metadata=minter.metadata(Identity("s")), timeout=5)] == [b"s|user"] * 2
        assert await _code(admin(b"", metadata=minter.metadata(Identity("u-2")), timeout=5)) \
            == grpc.StatusCode.PERMISSION_DENIED
        assert await _code(admin(b"", timeout=5)) == grpc.StatusCode.UNAUTHENTICATED

        forged = ((USER_ID_KEY, "u-1"), (ROLES_KEY, "admin"))
        expired = ProofMinter(key, "gateway", clock=lambda: clock.now - 3600).mint("u-1", ["admin"])
        stranger = ProofMinter(Ed25519PrivateKey.generate(), "gateway").mint("u-1", ["admin"])
        for metadata in (forged, (*forged, (IDENTITY_KEY, "garbage")), (*forged, *minter.metadata(ADMIN)),
                         ((IDENTITY_KEY, expired),), ((IDENTITY_KEY, stranger),), ((IDENTITY_KEY, ""),),
                         (*minter.metadata(Identity("a")), *minter.metadata(ADMIN))):
            for method in (who, admin):
                assert await _code(method(b"", metadata=metadata, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
            assert await _code(stream(b"", metadata=metadata, timeout=5).read()) == grpc.StatusCode.UNAUTHENTICATED
        # the caller of one call never leaks into the next
        assert await who(b"", timeout=5) == b"nobody"
