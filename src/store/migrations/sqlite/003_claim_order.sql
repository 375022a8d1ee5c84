-- Fewer indexes on the drain's insert path (PostgreSQL's 003 does the same). The table is
-- WITHOUT ROWID, so requests_claimable (status, lane, received_at) already ends with the
-- primary key id: it yields the claim order (received_at, id) itself, and it also finds
-- claimed rows (status = 'claimed') for the lease reaper, which is all requests_leases did.
-- No query reads requests by (status, received_at) alone.
DROP INDEX requests_status_received;
DROP INDEX requests_leases;
