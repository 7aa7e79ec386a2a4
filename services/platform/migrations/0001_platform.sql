-- The platform's tables in every service schema.

-- The service's event stream (DESIGN §4). Events are written in the same
-- transaction as the state change they report. Readers order by (txid, seq) and
-- read only below the oldest transaction still running, so an event committed
-- late by a slow transaction is never skipped by a reader that moved past it.
CREATE TABLE events (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
    kind         text NOT NULL,
    -- What consumers filter by: a guest, party, attraction or zone id.
    key          text NOT NULL DEFAULT '',
    payload      bytea NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    -- W3C traceparent of the span that produced the event, for span links.
    traceparent  text,
    PRIMARY KEY (txid, seq)
);
CREATE INDEX events_by_key ON events (key, txid, seq);

-- Where each consumer of another service's stream has got to.
CREATE TABLE stream_cursors (
    consumer    text PRIMARY KEY,
    cursor      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Replies to retried writes: the same key with the same request gets the same
-- reply; the same key with a different request is refused.
CREATE TABLE idempotency_keys (
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    response      bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
