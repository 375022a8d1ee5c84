-- Tenants are walls: a process key claims only its own tenant's requests. The claim index leads
-- with the tenant after the status, so a claim reads one index range of its tenant and lane in
-- (received_at, id) order and stops after LIMIT rows, however many other tenants have pending
-- work. The previous index is dropped: no query reads it without a tenant any more.
-- A plain CREATE INDEX blocks writes to requests while it builds; the runbook migrates while
-- every node is in receive mode, so only draining waits.
CREATE INDEX requests_claim_tenant ON requests (status, tenant, lane, received_at, id);
DROP INDEX requests_claim_order;
