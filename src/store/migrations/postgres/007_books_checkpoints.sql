-- Checkpoints of the books (docs/operations.md, "intake verify"): without them segments.log and
-- drained_segments grow by a line and a row per segment forever, and so does the cost of every
-- look at the books. The node that takes the books folds each node's oldest segments, those
-- listed in its segments.log, drained and gone from the spool, into one row here: their sums are
-- added, their drained_segments rows deleted, in one transaction, and log_offset says how many
-- bytes of nodes/<node>/segments.log the checkpoint accounts for (read from there on).
CREATE TABLE books_checkpoints (
  node       text PRIMARY KEY,
  log_offset bigint NOT NULL,
  segments   bigint NOT NULL,
  requests   bigint NOT NULL,
  refused    bigint NOT NULL,
  conflicts  bigint NOT NULL,
  folded_at  timestamptz NOT NULL DEFAULT now()
);
