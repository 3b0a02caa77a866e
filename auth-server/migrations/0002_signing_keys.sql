-- Signing keys and their lifecycle, shared by every process on this store. The private key is
-- sealed (AES-256-GCM under the key-encryption key); the partial unique indexes keep at most one
-- next and one active key whatever races.
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    created_at         INTEGER NOT NULL,
    activates_at       INTEGER NOT NULL,
    retired_at         INTEGER,
    expires_at         INTEGER,
    public_jwk         TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL
) STRICT;
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
