-- Tenants are walls: claims read one index range of their tenant and lane (PostgreSQL's 004
-- does the same). The table is WITHOUT ROWID, so the index ends with the primary key id.
CREATE INDEX requests_claim_tenant ON requests (status, tenant, lane, received_at);
DROP INDEX requests_claimable;
