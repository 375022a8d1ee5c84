-- The requests table: one row per accepted request, keyed by its id (the real guard against
-- duplicates: the drainer inserts with ON CONFLICT DO NOTHING). Ids are UUIDv7 (time-ordered),
-- so inserts land at the right edge of the primary key index.
CREATE TABLE requests (
  id              uuid PRIMARY KEY,
  tenant          text NOT NULL,
  idempotency_key text,
  received_at     timestamptz NOT NULL,  -- at the receiving node
  stored_at       timestamptz NOT NULL,  -- when drained
  node_id         text NOT NULL,
  callback_url    text NOT NULL,
  lane            text,
  not_before      timestamptz,
  payload         jsonb NOT NULL,
  metadata        jsonb,
  status          text NOT NULL DEFAULT 'pending'
);

CREATE INDEX requests_status_received ON requests (status, received_at);
