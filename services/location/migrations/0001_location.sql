-- The location service's tables. Current places and counts live in memory;
-- these tables hold what must survive a restart, the raw ping log and history.

-- Reader numbers for the ping log (two bytes a row instead of the id). A number
-- is never reused for another reader, whatever the venue file's order.
CREATE TABLE readers (
    reader_no     smallint PRIMARY KEY,
    reader_id     text NOT NULL UNIQUE,
    -- Newest read received from the reader (venue time), for reader health.
    last_ping_at  timestamptz
);

-- A track is a pseudonym for the pings of one guest under one consent: the ping
-- log names tracks, never guests. Withdrawing consent or erasure deletes the
-- guest's tracks, which unlinks their pings at once; the purger then deletes
-- the pings themselves.
CREATE TABLE tracks (
    track_no    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guest_id    uuid NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX tracks_by_guest ON tracks (guest_id);

-- The raw ping log of consenting guests, one partition per hour of venue time
-- (created ahead, dropped after the venue's ping retention). No per-guest index:
-- it would cost every ping for the sake of rare purges, which scan by time
-- (BRIN) instead.
CREATE TABLE pings (
    observed_at  timestamptz NOT NULL,
    track_no     integer NOT NULL,
    reader_no    smallint NOT NULL,
    rssi_dbm     smallint NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE INDEX pings_by_time ON pings USING brin (observed_at);

-- Ping log rows still to delete after their track was unlinked.
CREATE TABLE ping_purges (
    track_no   integer PRIMARY KEY,
    -- Pings of the track lie in [next_at, until_at); next_at advances as the
    -- purger works through the log.
    next_at    timestamptz NOT NULL,
    until_at   timestamptz NOT NULL
);

-- Acks of stored batches, per sending device: a resent batch gets its first ack.
CREATE TABLE ping_batches (
    device_id    uuid NOT NULL,
    batch_id     text NOT NULL,
    ack          bytea NOT NULL,
    -- Venue time the batch was stored.
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (device_id, batch_id)
);
CREATE INDEX ping_batches_by_age ON ping_batches (received_at);

-- Consenting guests' zone visits: the trail, and after a restart the current
-- place. A row with no zone means "no longer placed" from entered_at.
CREATE TABLE visits (
    guest_id    uuid NOT NULL,
    entered_at  timestamptz NOT NULL,
    zone_id     text,
    node_id     text,
    seq         bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX visits_by_guest ON visits (guest_id, entered_at DESC, seq DESC);
CREATE INDEX visits_by_time ON visits (entered_at);

-- Occupancy per zone and venue minute (nested zones included).
CREATE TABLE occupancy_minutes (
    zone_id     text NOT NULL,
    minute      timestamptz NOT NULL,
    mean_count  real NOT NULL,
    max_count   integer NOT NULL,
    capacity    integer NOT NULL,
    PRIMARY KEY (zone_id, minute)
);
CREATE INDEX occupancy_minutes_by_time ON occupancy_minutes (minute);

-- Old events are deleted by age (guest moves with the trail, counts later).
CREATE INDEX events_by_time ON events (occurred_at);
