-- The revocation feed: what resource servers poll to refuse revoked tokens without a call per
-- request. One row per kind and key (a later recording replaces the row, and so takes a new
-- seq); AUTOINCREMENT so that a seq is never handed out twice, even after the newest row is
-- purged: a holder's cursor then still means "everything up to here".
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    until      INTEGER NOT NULL,
    UNIQUE (kind, key)
) STRICT;
CREATE INDEX revocations_by_until ON revocations (until);

-- The one row naming this store's feed: a random epoch, so that a cursor of another store
-- never matches, and the purge floor, the highest seq purged (older cursors get the whole set).
CREATE TABLE revocation_feed (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL,
    floor INTEGER NOT NULL
) STRICT;
INSERT INTO revocation_feed (id, epoch, floor) VALUES (1, lower(hex(randomblob(12))), 0);
