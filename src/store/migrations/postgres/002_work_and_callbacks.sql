-- Processing API: leases on requests, results; the callback outbox.
ALTER TABLE requests ADD COLUMN lease_token uuid;
ALTER TABLE requests ADD COLUMN lease_expires_at timestamptz;
ALTER TABLE requests ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN result jsonb;
ALTER TABLE requests ADD COLUMN completed_at timestamptz;

CREATE INDEX requests_claimable ON requests (status, lane, received_at);
CREATE INDEX requests_leases ON requests (status, lease_expires_at);

-- One row per callback to send. id is the webhook-id: the same on every attempt.
CREATE TABLE callbacks (
  id              text PRIMARY KEY,
  request_id      uuid NOT NULL,
  tenant          text NOT NULL,
  url             text NOT NULL,
  body            text NOT NULL,                   -- the exact bytes every attempt sends
  status          text NOT NULL DEFAULT 'pending', -- pending | sending | delivered | parked | dead | gone
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  lease_until     timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  last_status     integer,
  last_error      text
);

CREATE INDEX callbacks_due ON callbacks (status, next_attempt_at);
CREATE INDEX callbacks_request ON callbacks (request_id);
