-- Credential lifecycle: what an operator changes about a user or a client reaches the tokens
-- already issued. Users and clients carry a session stamp (refresh families carry the stamp they
-- were minted under) and a cut-off for access tokens; clients may be public, may introspect any
-- token, and keep their previous secret during a rotation's overlap. Rows from before this
-- migration get empty stamps, which match each other until the first change that ends sessions.
ALTER TABLE users ADD COLUMN stamp TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;

ALTER TABLE clients ADD COLUMN public INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN introspect INTEGER NOT NULL DEFAULT 0;
-- Every client registered before could introspect any token; it keeps that right (an operator
-- takes it away with `client update ID --introspect false`). New clients start without it.
UPDATE clients SET introspect = 1;
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at INTEGER;
ALTER TABLE clients ADD COLUMN stamp TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;

ALTER TABLE refresh_tokens ADD COLUMN user_stamp TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN client_stamp TEXT NOT NULL DEFAULT '';

-- The access-token cut-off of a removed user or client, kept while a token it issued can live,
-- so that the name added again is a new account whose cut-off lies past every old token.
CREATE TABLE removed_names (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
) STRICT;
