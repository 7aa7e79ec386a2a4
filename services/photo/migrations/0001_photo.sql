-- Photo: captures (image references, never bytes), the parties and guests they
-- are linked to, "is this you?" suggestions, photographer sessions, purchases,
-- and what photo keeps of identity's and access's streams to link by.

CREATE TABLE photos (
    photo_id       uuid PRIMARY KEY,
    camera_id      text NOT NULL,
    capture_id     text NOT NULL,
    -- The device that sent it: a photographer's session links its own photos.
    device_id      text NOT NULL,
    source         smallint NOT NULL,                 -- CaptureSource
    attraction_id  text NOT NULL DEFAULT '',          -- ride cameras
    captured_at    timestamptz NOT NULL,              -- by the camera's clock
    vehicle_id     text NOT NULL DEFAULT '',
    row_number     integer NOT NULL DEFAULT 0,
    image_uri      text NOT NULL,
    image_sha256   text NOT NULL,
    -- Linking by boarding taps: 1 pending, 2 matched, 3 ambiguous, 4 no match.
    match_state    smallint NOT NULL,
    match_reason   text NOT NULL DEFAULT '',
    -- The matched vehicle's first and last boarding tap (the camera's model
    -- is rebuilt from them after a restart).
    match_first    timestamptz,
    match_last     timestamptz,
    ingested_at    timestamptz NOT NULL,
    UNIQUE (camera_id, capture_id)
);
CREATE INDEX photos_by_camera ON photos (camera_id, captured_at);
CREATE INDEX photos_by_attraction ON photos (attraction_id, captured_at DESC, photo_id DESC);
CREATE INDEX photos_by_device ON photos (device_id, captured_at);
CREATE INDEX photos_by_checksum ON photos (camera_id, image_sha256);
CREATE INDEX photos_by_time ON photos (captured_at);
CREATE INDEX photos_pending ON photos (captured_at) WHERE match_state = 1;

-- A photo in a party's account. Removed links stay (with the reason) so that
-- the party's "not us" is never undone by a later automatic link.
CREATE TABLE photo_links (
    photo_id        uuid NOT NULL REFERENCES photos ON DELETE CASCADE,
    party_id        uuid NOT NULL,
    source          smallint NOT NULL,                -- LinkSource
    linked_at       timestamptz NOT NULL,
    removed_at      timestamptz,
    removed_reason  smallint NOT NULL DEFAULT 0,      -- UnlinkReason
    PRIMARY KEY (photo_id, party_id)
);
CREATE INDEX photo_links_by_party ON photo_links (party_id, photo_id) WHERE removed_at IS NULL;

-- Who of the party the photo shows.
CREATE TABLE photo_link_guests (
    photo_id  uuid NOT NULL,
    party_id  uuid NOT NULL,
    guest_id  uuid NOT NULL,
    PRIMARY KEY (photo_id, party_id, guest_id),
    FOREIGN KEY (photo_id, party_id) REFERENCES photo_links ON DELETE CASCADE
);
CREATE INDEX photo_link_guests_by_guest ON photo_link_guests (guest_id);

CREATE TABLE suggestions (
    suggestion_id  uuid PRIMARY KEY,
    photo_id       uuid NOT NULL REFERENCES photos ON DELETE CASCADE,
    party_id       uuid NOT NULL,
    -- Members with photo linking on who boarded near the capture.
    guest_ids      uuid[] NOT NULL,
    boarded_at     timestamptz NOT NULL,
    state          smallint NOT NULL,                 -- 1 offered, 2 accepted, 3 rejected
    offered_at     timestamptz NOT NULL,
    answered_at    timestamptz,
    UNIQUE (photo_id, party_id)
);
CREATE INDEX suggestions_by_party ON suggestions (party_id, boarded_at DESC, suggestion_id DESC);

-- Allowed boarding taps at the rides photo links (from access's stream).
CREATE TABLE boarding_taps (
    tap_id           text PRIMARY KEY,
    access_point_id  text NOT NULL,
    guest_id         uuid NOT NULL,
    party_id         uuid NOT NULL,
    tapped_at        timestamptz NOT NULL
);
CREATE INDEX boarding_taps_by_point ON boarding_taps (access_point_id, tapped_at);
CREATE INDEX boarding_taps_by_guest ON boarding_taps (guest_id);
CREATE INDEX boarding_taps_by_time ON boarding_taps (tapped_at);

-- Parties and photo consent (from identity's stream). Erased guests stay as
-- a bare id so that their late taps are ignored.
CREATE TABLE guests (
    guest_id       uuid PRIMARY KEY,
    party_id       uuid,
    photo_linking  boolean NOT NULL DEFAULT false,
    erased         boolean NOT NULL DEFAULT false
);
CREATE INDEX guests_by_party ON guests (party_id);

-- A photographer's tap: the device's photos from started_at until its next
-- tap or expires_at go to the party. A tap that found no guest has no party
-- and links nothing (it still ends the previous session).
CREATE TABLE photographer_sessions (
    session_id  uuid PRIMARY KEY,
    device_id   text NOT NULL,
    camera_id   text NOT NULL,
    guest_id    uuid,
    party_id    uuid,
    started_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX photographer_sessions_by_device ON photographer_sessions (device_id, started_at);
CREATE INDEX photographer_sessions_by_guest ON photographer_sessions (guest_id);

-- Purchases charged through access. A purchase is written (pending) before
-- the charge and finished after it, so a retry re-sends the same charge, which
-- access applies once.
CREATE TABLE purchases (
    purchase_id     uuid PRIMARY KEY,
    scope           text NOT NULL,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    party_id        uuid NOT NULL,
    guest_id        uuid,
    photo_id        uuid REFERENCES photos ON DELETE SET NULL,
    package_date    date,
    price_minor     bigint NOT NULL CHECK (price_minor > 0),
    currency        text NOT NULL,
    charge_key      text NOT NULL,
    charged_at      timestamptz NOT NULL,
    state           smallint NOT NULL,                -- 1 pending, 2 approved, 3 declined, 4 refunded
    charge_id       text NOT NULL DEFAULT '',
    decline_reason  smallint NOT NULL DEFAULT 0,      -- PurchaseDeclineReason
    display_message text NOT NULL DEFAULT '',
    decided_at      timestamptz,
    UNIQUE (scope, key)
);
-- One purchase of a photo (or a day's package) per party at a time: a second
-- one is refused before anything is charged.
CREATE UNIQUE INDEX purchases_one_photo ON purchases (party_id, photo_id)
    WHERE state IN (1, 2) AND photo_id IS NOT NULL;
CREATE UNIQUE INDEX purchases_one_package ON purchases (party_id, package_date)
    WHERE state IN (1, 2) AND package_date IS NOT NULL;
CREATE INDEX purchases_pending ON purchases (charged_at) WHERE state = 1;
