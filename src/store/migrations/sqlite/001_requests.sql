-- The requests table: one row per accepted request, keyed by its id (the real guard against
-- duplicates: the drainer inserts with ON CONFLICT DO NOTHING).
CREATE TABLE requests (
  id              TEXT PRIMARY KEY,
  tenant          TEXT NOT NULL,
  idempotency_key TEXT,
  received_at     INTEGER NOT NULL,  -- ms since epoch, at the receiving node
  stored_at       INTEGER NOT NULL,  -- ms since epoch, when drained
  node_id         TEXT NOT NULL,
  callback_url    TEXT NOT NULL,
  lane            TEXT,
  not_before      INTEGER,
  payload         TEXT NOT NULL,     -- JSON text
  metadata        TEXT,              -- JSON text
  status          TEXT NOT NULL DEFAULT 'pending'
) WITHOUT ROWID;

CREATE INDEX requests_status_received ON requests (status, received_at);
