-- The books that `intake verify` balances (SQLite's 006 does the same; docs/operations.md).
--
-- drained_segments: one row per spool segment the drainer has finished with, written after its
-- rows are committed and its refused records quarantined, and before the file is deleted. A
-- crash before the row leaves the file in the spool (counted there, drained again); a crash
-- after it leaves both, and verify counts that segment once, from this row. The row is
-- insert-if-absent, so a re-drain changes nothing.
--   requests:  intact request records in the segment (each one a 202 the node gave)
--   refused:   of those, records the database refused (quarantined, reason db-refused)
--   conflicts: of those, records whose id is stored with another body (idempotency-conflict)
CREATE TABLE drained_segments (
  node       text NOT NULL,
  segment    text NOT NULL,
  requests   integer NOT NULL,
  refused    integer NOT NULL,
  conflicts  integer NOT NULL,
  drained_at timestamptz NOT NULL DEFAULT now(),
  drained_by text NOT NULL,
  PRIMARY KEY (node, segment)
);

-- Rows ever inserted into requests, counted by every insert in its own transaction (so no
-- crash can make the count and the rows disagree). Rows only ever leave requests by hand, so
-- COUNT(*) below this sum means rows were lost. Starts at the rows present now.
-- One row appended per insert statement: concurrent drains never wait on one counter row.
CREATE TABLE requests_inserted (
  n bigint NOT NULL
);
INSERT INTO requests_inserted (n) SELECT COUNT(*) FROM requests;
