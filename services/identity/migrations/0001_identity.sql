-- Guests, parties, bands, consent, and the credentials of devices and staff.

CREATE TABLE parties (
    party_id    uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE guests (
    guest_id             uuid PRIMARY KEY,
    party_id             uuid NOT NULL REFERENCES parties,
    role                 smallint NOT NULL,          -- PartyRole
    -- Personal data, nulled by erasure.
    display_name         text,
    email                text,
    password_hash        text,
    height_cm            integer NOT NULL DEFAULT 0 CHECK (height_cm BETWEEN 0 AND 300),
    consent_location     boolean NOT NULL DEFAULT false,
    consent_nudges       boolean NOT NULL DEFAULT false,
    consent_photos       boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    erased_at            timestamptz
);
CREATE UNIQUE INDEX guests_email ON guests (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX guests_by_party ON guests (party_id, created_at, guest_id);

CREATE TABLE party_invites (
    code_hash   bytea PRIMARY KEY,
    party_id    uuid NOT NULL REFERENCES parties,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- One-time codes that sign a guest's app in; only their hash is kept.
CREATE TABLE app_links (
    code_hash   bytea PRIMARY KEY,
    guest_id    uuid NOT NULL REFERENCES guests,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE TABLE bands (
    band_id              uuid PRIMARY KEY,
    band_uid             text,                       -- nulled by erasure
    guest_id             uuid NOT NULL REFERENCES guests,
    status               smallint NOT NULL,          -- BandStatus
    deactivation_reason  smallint NOT NULL DEFAULT 0,
    linked_at            timestamptz NOT NULL DEFAULT now(),
    deactivated_at       timestamptz
);
-- A UID names at most one active band; a deactivated band's UID stays refused.
CREATE UNIQUE INDEX bands_active_uid ON bands (band_uid) WHERE status = 1;
CREATE INDEX bands_by_uid ON bands (band_uid);
CREATE INDEX bands_by_guest ON bands (guest_id, linked_at, band_id);

CREATE TABLE devices (
    device_id    uuid PRIMARY KEY,
    kind         smallint NOT NULL,                  -- common.DeviceKind
    name         text NOT NULL,
    zone_id      text NOT NULL DEFAULT '',
    node_id      text NOT NULL DEFAULT '',
    venue_ref    text NOT NULL DEFAULT '',
    secret_hash  bytea NOT NULL,
    status       smallint NOT NULL,                  -- CredentialStatus
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX devices_by_kind ON devices (kind, created_at, device_id);

CREATE TABLE staff (
    staff_id      uuid PRIMARY KEY,
    display_name  text NOT NULL,
    role          smallint NOT NULL,                 -- common.StaffRole
    secret_hash   bytea NOT NULL,
    status        smallint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
