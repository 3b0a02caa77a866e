-- Users, clients, refresh-token families, revoked access tokens and login throttles.
CREATE TABLE users (
    username      TEXT PRIMARY KEY NOT NULL,
    full_name     TEXT,
    email         TEXT,
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    scopes        TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    grants      TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    audiences   TEXT NOT NULL
) STRICT;

CREATE TABLE refresh_tokens (
    id               TEXT PRIMARY KEY NOT NULL,
    family_id        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    username         TEXT NOT NULL,
    scope            TEXT NOT NULL,
    audience         TEXT NOT NULL,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    sealed_successor BLOB,
    successor_id     TEXT
) STRICT;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE revoked_families (
    family_id  TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE login_failures (
    key        TEXT PRIMARY KEY NOT NULL,
    count      INTEGER NOT NULL,
    window_end INTEGER NOT NULL
) STRICT;
