
import pytest
from sutazai_gateway.auth import api_keys, tokens
from sutazai_gateway.auth.passwords import hash_password, verify_password

SECRET = "k" * 10 + "0123456789abcdefghijklmnopqrstuv"


def test_passwords_are_argon2_and_verify() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2")
    assert verify_password(stored, "correct horse")
    assert not verify_password(stored, "wrong")
    assert not verify_password("not-a-hash", "x")


def test_api_keys_parse_hash_and_compare() -> None:
    key = api_keys.generate_key()
    parsed = api_keys.parse_key(key)
    assert parsed is not None and key.startswith(f"sk-sutazai-{parsed.prefix}-")
    assert api_keys.key_matches(key, api_keys.hash_key(key))
    assert not api_keys.key_matches(key + "x", api_keys.hash_key(key))
    assert api_keys.parse_key("sk-sutazai-short") is None
    assert api_keys.parse_key(key.upper()) is None


def test_tokens_round_trip_and_refuse_the_wrong_type() -> None:
    access = tokens.issue(SECRET, "u1", ("user",), "access", 60)
    assert tokens.verify(SECRET, access, "access") == tokens.TokenClaims("u1", ("user",), "access")
    with pytest.raises(tokens.InvalidTokenError, match="expected a refresh token"):
        tokens.verify(SECRET, access, "refresh")


def test_tokens_refuse_other_secrets_expiry_and_garbage() -> None:
    access = tokens.issue(SECRET, "u1", ("user",), "access", 60)
    with pytest.raises(tokens.InvalidTokenError):
        tokens.verify("x" * 40, access, "access")
    expired = tokens.issue(SECRET, "u1", ("user",), "access", -1)  # exp is a second before iat
    with pytest.raises(tokens.InvalidTokenError, match="expired"):
        tokens.verify(SECRET, expired, "access")
    with pytest.raises(tokens.InvalidTokenError):
        tokens.verify(SECRET, "not.a.jwt", "access")


def test_the_gateway_refuses_a_weak_or_placeholder_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError
    from sutazai_gateway.config import Settings

    monkeypatch.setenv("SUTAZAI_GATEWAY_JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="jwt_secret"):
        Settings()
    monkeypatch.setenv("SUTAZAI_GATEWAY_JWT_SECRET", "changeme-changeme-changeme-changeme-123")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings()
    monkeypatch.delenv("SUTAZAI_GATEWAY_JWT_SECRET")
    with pytest.raises(ValidationError, match="jwt_secret"):
        Settings()
    monkeypatch.setenv("SUTAZAI_GATEWAY_JWT_SECRET", SECRET)
    assert SECRET not in repr(Settings())
