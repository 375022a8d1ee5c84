-- Kept in step with PostgreSQL's 003 (the two engines share version numbers). Nothing to do
-- here: the SQLite table is WITHOUT ROWID, so requests_claimable (status, lane, received_at)
-- already ends with the primary key id and yields the claim order (received_at, id) itself.
SELECT 1;
