-- The queue twin: the facts it learns from, ops decisions, the wait history,
-- and the virtual queue and return-time bookings.

-- One order for everything the twin applies, so a restart replays taps and
-- ops decisions in the order they were first handled.
CREATE SEQUENCE twin_seq;

-- Allowed taps at the gates and at ride access points, from access's stream.
-- Keyed by access's tap id: a tap handled twice is stored once.
CREATE TABLE taps (
    tap_id          text PRIMARY KEY,
    seq             bigint NOT NULL DEFAULT nextval('twin_seq'),
    kind            smallint NOT NULL,          -- 1 entry, 2 exit, 3 standby, 4 merge, 5 boarding
    attraction_id   text NOT NULL DEFAULT '',
    guest_id        text NOT NULL,              -- pseudonymous; replaced on erasure
    tapped_at       timestamptz NOT NULL,
    entitlement_id  text NOT NULL DEFAULT '',
    -- Standby taps: what the twin would have posted when the guest joined,
    -- before and after its correction (seconds).
    raw_wait_s      double precision,
    posted_wait_s   double precision
);
CREATE INDEX taps_by_time ON taps (tapped_at, seq);
CREATE INDEX taps_by_attraction ON taps (attraction_id, kind, tapped_at);
CREATE INDEX taps_by_guest ON taps (guest_id, attraction_id, tapped_at);

-- Ops decisions on an attraction's status.
CREATE TABLE status_log (
    seq                 bigint PRIMARY KEY DEFAULT nextval('twin_seq'),
    attraction_id       text NOT NULL,
    status              smallint NOT NULL,
    reason              smallint NOT NULL,
    note                text NOT NULL DEFAULT '',
    since               timestamptz NOT NULL,
    expected_reopen_at  timestamptz,
    set_by              text NOT NULL           -- pseudonymous staff id
);
CREATE INDEX status_log_by_time ON status_log (since);

-- The latest count of each queue zone, from location's stream.
CREATE TABLE zone_occupancy (
    zone_id  text PRIMARY KEY,
    count    integer NOT NULL,
    at       timestamptz NOT NULL
);

-- One sample per attraction per minute of venue time (and at status changes).
CREATE TABLE wait_samples (
    attraction_id        text NOT NULL,
    at                   timestamptz NOT NULL,
    status               smallint NOT NULL,
    posted_wait_s        real,
    standby_line_length  integer NOT NULL,
    throughput_per_hour  real NOT NULL,
    PRIMARY KEY (attraction_id, at)
);

CREATE TABLE bookings (
    booking_id         uuid PRIMARY KEY,
    kind               smallint NOT NULL,       -- BookingKind
    status             smallint NOT NULL,       -- BookingStatus
    attraction_id      text NOT NULL,
    party_id           text NOT NULL,
    venue_date         date NOT NULL,
    boarding_group     integer NOT NULL DEFAULT 0,
    window_start       timestamptz,
    window_end         timestamptz,
    rebooked_from      uuid REFERENCES bookings,
    created_at         timestamptz NOT NULL,
    called_at          timestamptz,
    cancelled_at       timestamptz,
    cancel_reason      smallint NOT NULL DEFAULT 0,
    CHECK ((window_start IS NULL) = (window_end IS NULL)),
    CHECK (window_start IS NULL OR window_start < window_end)
);
CREATE INDEX bookings_by_party ON bookings (party_id, created_at, booking_id);
CREATE INDEX bookings_by_attraction ON bookings (attraction_id, venue_date, status);

-- The guests of a booking, each with their pass in access.
CREATE TABLE booking_guests (
    booking_id      uuid NOT NULL REFERENCES bookings,
    guest_id        text NOT NULL,
    position        smallint NOT NULL,
    entitlement_id  text NOT NULL DEFAULT '',
    -- 1 to issue, 2 issued, 3 window to send, 4 to revoke, 5 revoked, 6 refused by access
    pass_state      smallint NOT NULL,
    pass_attempts   integer NOT NULL DEFAULT 0,
    revoke_reason   smallint NOT NULL DEFAULT 0,
    redeemed_at     timestamptz,
    PRIMARY KEY (booking_id, guest_id)
);
CREATE INDEX booking_guests_by_guest ON booking_guests (guest_id);
CREATE INDEX booking_guests_by_entitlement ON booking_guests (entitlement_id)
    WHERE entitlement_id <> '';
CREATE INDEX booking_guests_pending ON booking_guests (pass_state) WHERE pass_state IN (1, 3, 4);

-- Each attraction's virtual queue on one venue day.
CREATE TABLE virtual_queues (
    attraction_id       text NOT NULL,
    venue_date          date NOT NULL,
    next_group          integer NOT NULL DEFAULT 1,
    next_group_guests   integer NOT NULL DEFAULT 0,
    last_called_group   integer NOT NULL DEFAULT 0,
    next_call_at        timestamptz,
    PRIMARY KEY (attraction_id, venue_date)
);
