"""Identity: users with argon2 password hashes, JWT access/refresh tokens, hashed API keys."""
