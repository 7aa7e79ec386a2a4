-- Day plans, nudges, guests' nudge preferences, and the queue bookings the
-- itinerary learns from the queue service's stream.

-- One plan per party per venue day. The plan is one document (wish list,
-- bookings, stops, progress) written as a whole under optimistic concurrency:
-- every write is "UPDATE ... WHERE revision = the revision read". `version` is
-- the public one, bumped when the plan's content changes (an edit, a replan),
-- not by progress, so a family member's edit fails only against another edit.
CREATE TABLE plans (
    plan_id     uuid PRIMARY KEY,
    party_id    uuid NOT NULL,
    venue_date  date NOT NULL,
    version     bigint NOT NULL,
    revision    bigint NOT NULL,
    doc         jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (party_id, venue_date)
);
CREATE INDEX plans_by_date ON plans (venue_date);

CREATE TABLE nudges (
    nudge_id      uuid PRIMARY KEY,
    guest_id      uuid NOT NULL,
    party_id      uuid NOT NULL,
    plan_id       uuid,
    venue_date    date NOT NULL,
    kind          smallint NOT NULL,          -- NudgeKind
    urgency       smallint NOT NULL,          -- NudgeUrgency
    -- Same key, same message: a guest gets a key at most once a venue day, also
    -- across restarts and replayed events.
    dedup_key     text NOT NULL,
    subject       text NOT NULL,
    title         text NOT NULL,
    body          text NOT NULL,
    reason        text NOT NULL,
    action        bytea NOT NULL,             -- itinerary.v1.NudgeAction
    time_saved_s  real NOT NULL,
    status        smallint NOT NULL,          -- NudgeStatus (EXPIRED is computed on read)
    created_at    timestamptz NOT NULL,       -- venue time
    expires_at    timestamptz NOT NULL,
    seen_at       timestamptz,
    acted_at      timestamptz,                -- accepted, dismissed or withdrawn
    UNIQUE (guest_id, venue_date, dedup_key)
);
CREATE INDEX nudges_by_guest ON nudges (guest_id, created_at DESC, nudge_id DESC);
CREATE INDEX nudges_by_time ON nudges (created_at);

-- Every distinct message the rules proposed to a guest, sent or held back, and
-- why it was first held back: the ops view's candidates and withheld counts.
CREATE TABLE nudge_candidates (
    guest_id    uuid NOT NULL,
    venue_date  date NOT NULL,
    dedup_key   text NOT NULL,
    kind        smallint NOT NULL,
    first_at    timestamptz NOT NULL,
    why         text NOT NULL,
    PRIMARY KEY (guest_id, venue_date, dedup_key)
);
CREATE INDEX nudge_candidates_by_time ON nudge_candidates (first_at);

CREATE TABLE nudge_preferences (
    guest_id       uuid PRIMARY KEY,
    quiet_periods  jsonb NOT NULL,            -- [[start, end], ...] ISO 8601
    muted_kinds    smallint[] NOT NULL,
    max_per_hour   integer NOT NULL CHECK (max_per_hour >= 0),
    updated_at     timestamptz NOT NULL
);

-- The queue service's return-time and virtual-queue bookings, kept from its
-- stream so that a plan created after a booking still gets it.
CREATE TABLE queue_bookings (
    booking_id     text PRIMARY KEY,
    party_id       uuid NOT NULL,
    attraction_id  text NOT NULL,
    kind           smallint NOT NULL,         -- PlanBookingKind
    active         boolean NOT NULL,
    window_start   timestamptz,
    window_end     timestamptz,
    guest_ids      uuid[] NOT NULL,
    called_at      timestamptz,
    updated_at     timestamptz NOT NULL       -- venue time of the newest event applied
);
CREATE INDEX queue_bookings_by_party ON queue_bookings (party_id);
