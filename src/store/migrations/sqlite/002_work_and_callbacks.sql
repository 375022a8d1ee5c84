-- Processing API: leases on requests, results; the callback outbox.
ALTER TABLE requests ADD COLUMN lease_token TEXT;
ALTER TABLE requests ADD COLUMN lease_expires_at INTEGER;      -- ms since epoch
ALTER TABLE requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN result TEXT;                   -- JSON text
ALTER TABLE requests ADD COLUMN completed_at INTEGER;

CREATE INDEX requests_claimable ON requests (status, lane, received_at);
CREATE INDEX requests_leases ON requests (status, lease_expires_at);

-- One row per callback to send. id is the webhook-id: the same on every attempt.
CREATE TABLE callbacks (
  id              TEXT PRIMARY KEY,
  request_id      TEXT NOT NULL,
  tenant          TEXT NOT NULL,
  url             TEXT NOT NULL,
  body            TEXT NOT NULL,                  -- the exact bytes every attempt sends
  status          TEXT NOT NULL DEFAULT 'pending', -- pending | sending | delivered | parked | dead | gone
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_until     INTEGER,
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  last_status     INTEGER,
  last_error      TEXT
) WITHOUT ROWID;

CREATE INDEX callbacks_due ON callbacks (status, next_attempt_at);
CREATE INDEX callbacks_request ON callbacks (request_id);
