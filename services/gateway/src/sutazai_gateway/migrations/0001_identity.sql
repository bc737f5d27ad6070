-- Identity: users and their API keys. Passwords are argon2 hashes; API keys are stored hashed.
CREATE TABLE users (
    id                     uuid PRIMARY KEY,
    username               text NOT NULL UNIQUE CHECK (length(username) BETWEEN 3 AND 64),
    email                  text UNIQUE,
    password_hash          text NOT NULL,
    is_active              boolean NOT NULL DEFAULT true,
    is_admin               boolean NOT NULL DEFAULT false,
    failed_login_attempts  integer NOT NULL DEFAULT 0,
    locked_until           timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL UNIQUE,
    key_hash      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
