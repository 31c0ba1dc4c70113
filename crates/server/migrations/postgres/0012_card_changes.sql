-- Card changes are numbered (PostgreSQL only: on SQLite one process sees every change). Every
-- publish and revoke takes the next number just before it commits, under a transaction-scoped
-- advisory lock held until the commit, and announces it in its NOTIFY. So the numbers of
-- committed changes follow commit order, and a replica that has heard number n has heard every
-- change numbered up to n; a search that reads the last number taken knows which
-- announcements its cache must have heard first (the read barrier, docs/server-benchmark.md,
-- "Search answer cache"). A sequence rather than a counter row: a row lock handed from writer
-- to writer cut card writes to a quarter, the advisory lock costs about a fifth.
CREATE SEQUENCE card_changes_seq;
