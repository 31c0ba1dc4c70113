-- The number of the last card change committed (PostgreSQL only: on SQLite one process sees
-- every change). Every publish and revoke adds one in its transaction, just before it commits,
-- and announces the new number in its NOTIFY. The row lock orders the numbers as the commits,
-- so a replica that has heard number n has heard every change numbered up to n, and a search
-- that reads the committed number knows which announcements its cache must have heard first
-- (the read barrier, docs/server-benchmark.md, "Search answer cache").
CREATE TABLE card_changes (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    seq      BIGINT  NOT NULL
);

INSERT INTO card_changes (only_row, seq) VALUES (TRUE, 0);
