"""Login, token refresh, and turning a presented credential into an ``Identity``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sutazai_runtime.identity import Identity

from sutazai_gateway.auth import api_keys, tokens
from sutazai_gateway.auth.cache import CredentialCache
from sutazai_gateway.auth.passwords import hash_password, verify_password
from sutazai_gateway.auth.store import AuthStore, User, UsernameTakenError
from sutazai_gateway.auth.usage import KeyUsage

# Where an API key's prefix (its id part) sits: sk-sutazai-<8 hex>-<secret>.
_PREFIX_AT = len(api_keys.KEY_PREFIX)
_PREFIX_END = _PREFIX_AT + 8
MAX_FAILED_LOGINS = 5
LOCK_DURATION = timedelta(minutes=30)
# Verifying against this keeps a login for an unknown user as slow as one with a wrong password.
_DUMMY_HASH = hash_password("not a real password")


class AuthError(Exception):
    """The credential is missing, malformed, unknown, expired or revoked (HTTP 401)."""


class AccountLockedError(AuthError):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"the account is locked until {until.isoformat()}")
        self.until = until


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class Authenticator:
    def __init__(
        self, store: AuthStore, jwt_secret: str, *, access_ttl_s: int, refresh_ttl_s: int,
        key_cache_ttl_s: float = 10.0, usage: KeyUsage | None = None,
    ) -> None:
        self._store = store
        self._secret = jwt_secret
        self._access_ttl_s = access_ttl_s
        self._refresh_ttl_s = refresh_ttl_s
        # Verified API keys and access tokens are remembered briefly (a bounded LRU, per process). A revoked key
        # or a disabled user is dropped from every process's cache by an announcement (``revocations.py``);
        # otherwise the TTL bounds how long a change takes.
        self._verified = CredentialCache(key_cache_ttl_s)
        self._usage = usage  # API keys' last_used_at, written in batches

    @property
    def store(self) -> AuthStore:
        return self._store

    def _pair(self, user_id: str, roles: tuple[str, ...]) -> TokenPair:
        return TokenPair(
            tokens.issue(self._secret, user_id, roles, "access", self._access_ttl_s),
            tokens.issue(self._secret, user_id, roles, "refresh", self._refresh_ttl_s),
            self._access_ttl_s,
        )

    async def login(self, username: str, password: str) -> TokenPair:
        user = await self._store.user_by_name(username)
        if user is None:
            verify_password(_DUMMY_HASH, password)
            raise AuthError("wrong username or password")
        now = datetime.now(UTC)
        if user.locked_until and user.locked_until > now:
            raise AccountLockedError(user.locked_until)
        if not verify_password(user.password_hash, password):
            await self._store.record_failed_login(user.id, MAX_FAILED_LOGINS, LOCK_DURATION)
            raise AuthError("wrong username or password")
        if not user.is_active:
            raise AuthError("the account is disabled")
        await self._store.record_successful_login(user.id)
        return self._pair(user.id, user.roles)

    async def refresh(self, refresh_token: str) -> TokenPair:
        try:
            claims = tokens.verify(self._secret, refresh_token, "refresh")
        except tokens.InvalidTokenError as exc:
            raise AuthError(f"invalid refresh token: {exc}") from exc
        user = await self._store.user_by_id(claims.user_id)
        if user is None or not user.is_active:
            raise AuthError("the account no longer exists or is disabled")
        return self._pair(user.id, user.roles)

    async def identify(self, credential: str) -> Identity:
        """The identity behind an API key or an access token (verified at most once per cache TTL)."""
        cached = self._verified.get(credential)
        if cached is not None:
            if self._usage is not None and credential.startswith(api_keys.KEY_PREFIX):
                self._usage.touch(credential[_PREFIX_AT:_PREFIX_END], time.time())
            return cached
        if credential.startswith(api_keys.KEY_PREFIX):
            identity, prefix = await self._identify_key(credential)
            self._verified.put(credential, identity)
            if self._usage is not None:
                self._usage.touch(prefix, time.time())
            return identity
        try:
            claims = tokens.verify(self._secret, credential, "access")
        except tokens.InvalidTokenError as exc:
            raise AuthError(f"invalid access token: {exc}") from exc
        # A token outlives changes to its account: the account is read again (once per cache TTL), so a disabled
        # or deleted user's tokens stop working, and changed roles apply.
        try:
            user = await self._store.user_by_id(claims.user_id)
        except ValueError:  # not a user id (a token of ours always names one)
            user = None
        if user is None or not user.is_active:
            raise AuthError("the account no longer exists or is disabled")
        identity = Identity(user.id, frozenset(user.roles))
        self._verified.put(credential, identity, valid_for_s=claims.expires_at - time.time())
        return identity

    async def _identify_key(self, key: str) -> tuple[Identity, str]:
        parsed = api_keys.parse_key(key)
        row = await self._store.api_key_by_prefix(parsed.prefix) if parsed else None
        if row is None or row.revoked_at is not None or not api_keys.key_matches(key, row.key_hash):
            raise AuthError("unknown or revoked API key")
        user = await self._store.user_by_id(row.user_id)
        if user is None or not user.is_active:
            raise AuthError("the API key's account is disabled")
        return Identity(user.id, frozenset(user.roles)), row.prefix

    def forget_user(self, user_id: str) -> None:
        """Drop every cached credential of ``user_id`` so this process verifies them again."""
        self._verified.forget_user(user_id)

    def forget_key(self, key_prefix: str) -> None:
        """Drop a revoked key from the cache so this gateway process refuses it at once."""
        self._verified.forget_prefix(f"{api_keys.KEY_PREFIX}{key_prefix}-")

    async def create_user(self, username: str, password: str, *, email: str | None, is_admin: bool) -> User:
        return await self._store.create_user(username, hash_password(password), email=email, is_admin=is_admin)

    async def create_api_key(self, user_id: str, name: str) -> tuple[str, str]:
        """A new key for ``user_id``: returns (key id, the key itself, shown only this once)."""
        key = api_keys.generate_key()
        parsed = api_keys.parse_key(key)
        assert parsed is not None
        row = await self._store.create_api_key(user_id, name, parsed.prefix, api_keys.hash_key(key))
        return row.id, key


async def bootstrap_admin(
    store: AuthStore, username: str, password: str | None, api_key: str | None
) -> None:
    """Create the first admin (and its API key) from configuration when they do not exist yet.
    An existing admin's password is never changed here."""
    if password is None:
        return
    user = await store.user_by_name(username)
    if user is None:
        try:
            user = await store.create_user(username, hash_password(password), email=None, is_admin=True)
        except UsernameTakenError:
            # Several gateway workers start at once: another one created it first.
            user = await store.user_by_name(username)
            assert user is not None
    if api_key:
        parsed = api_keys.parse_key(api_key)
        if parsed is None:
            raise ValueError("the bootstrap API key is not in the sk-sutazai-<8>-<43> format")
        await store.create_api_key(user.id, "bootstrap", parsed.prefix, api_keys.hash_key(api_key))
