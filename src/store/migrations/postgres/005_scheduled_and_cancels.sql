-- Delayed requests and cancels (SQLite's 005 does the same).
--
-- A request whose not_before is still ahead when it is drained is stored 'scheduled', not
-- 'pending', so claims (which read only pending rows) never walk past delayed ones. Every
-- save-mode node turns due scheduled rows into pending ones; this partial index holds only the
-- scheduled rows, in the order that duty reads them, and costs a pending row nothing.
-- Rows stored before this migration with a future not_before stay pending: claims still test
-- not_before themselves. The runbook migrates while every node is in receive mode.
CREATE INDEX requests_scheduled_due ON requests (not_before) WHERE status = 'scheduled';

-- Tombstones: a cancel that reached the database before its request (from a later segment
-- drained first, or from a node that had not seen the id yet). The request's insert finds its
-- tombstone, stores the request as 'cancelled' and removes the tombstone; a tombstone of
-- another tenant's id is removed without effect.
CREATE TABLE cancels (
  id           uuid PRIMARY KEY,
  tenant       text NOT NULL,
  cancelled_at timestamptz NOT NULL,  -- at the node that accepted the cancel
  node_id      text NOT NULL
);
