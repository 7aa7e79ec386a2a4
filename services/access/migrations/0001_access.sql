-- Entitlements, access points' state, taps, wallets and the double-entry ledger.
--
-- Enum columns hold the values of venue.access.v1 enums (smallint).

-- Only the state of an access point lives here: everything else about it comes
-- from the venue definition. No row means open.
CREATE TABLE access_point_states (
    access_point_id  text PRIMARY KEY,
    state            smallint NOT NULL,              -- AccessPointState
    closed_reason    text NOT NULL DEFAULT '',
    changed_at       timestamptz NOT NULL,
    changed_by       text NOT NULL
);

-- One row per guest holding anything: the guest's presence in the park and a
-- version that every change of the guest's entitlements or presence bumps. A tap
-- decided on what it read commits only if the version is still the one it read
-- (see record_tap), so no decision is ever made on a stale view.
CREATE TABLE holders (
    guest_id      uuid PRIMARY KEY,
    party_id      uuid NOT NULL,
    version       bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    inside        boolean NOT NULL DEFAULT false,
    -- Venue day of the last gate tap: "inside" counts only on that day.
    presence_day  date
);

CREATE TABLE entitlements (
    entitlement_id     uuid PRIMARY KEY,
    kind               smallint NOT NULL,            -- EntitlementKind
    status             smallint NOT NULL,            -- EntitlementStatus (never EXPIRED: derived)
    guest_id           uuid NOT NULL,
    party_id           uuid NOT NULL,
    external_ref       text NOT NULL DEFAULT '',
    -- Park tickets.
    park_id            text,
    valid_dates        date[],
    days_allowed       integer CHECK (days_allowed >= 0),
    entries_per_day    integer CHECK (entries_per_day >= 0),
    days_used          integer NOT NULL DEFAULT 0 CHECK (days_used >= 0),
    last_day           date,
    entries_last_day   integer NOT NULL DEFAULT 0 CHECK (entries_last_day >= 0),
    -- Return times and virtual-queue passes.
    attraction_id      text,
    booking_id         text,
    boarding_group     integer,
    -- Hotel room keys.
    hotel_id           text,
    room_id            text,
    -- Return window, virtual-queue window, hotel stay or staff validity.
    window_start       timestamptz,
    window_end         timestamptz,
    -- Staff access: the doors and gates allowed (empty: all).
    access_point_ids   text[],
    -- After this instant the entitlement can no longer be used (shown EXPIRED);
    -- NULL while it has no end yet (a virtual-queue pass not yet called).
    valid_until        timestamptz,
    created_at         timestamptz NOT NULL,
    created_by         text NOT NULL,
    last_used_at       timestamptz,
    revoked_at         timestamptz,
    revocation_reason  smallint NOT NULL DEFAULT 0,
    CHECK (window_start IS NULL OR window_end > window_start)
);
CREATE INDEX entitlements_by_guest ON entitlements (guest_id, kind);
CREATE INDEX entitlements_guest_list ON entitlements (guest_id, created_at, entitlement_id);
CREATE INDEX entitlements_party_list ON entitlements (party_id, created_at, entitlement_id);

-- Every tap, allowed or denied. The row is also the tap's idempotency record:
-- (scope, idem_key) is the device and its key, and reply is what a retry gets.
CREATE TABLE taps (
    scope            text NOT NULL,
    idem_key         text NOT NULL,
    request_hash     bytea NOT NULL,
    reply            bytea NOT NULL,
    tap_id           uuid NOT NULL,
    access_point_id  text NOT NULL,
    guest_id         uuid,
    decision         smallint NOT NULL,              -- TapDecision
    deny_reason      smallint NOT NULL DEFAULT 0,    -- DenyReason
    entitlement_id   uuid,
    tapped_at        timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX taps_by_guest ON taps (guest_id) WHERE guest_id IS NOT NULL;

-- --- money -------------------------------------------------------------------

-- A party's stored-value wallet. Its balance is the materialized balance of the
-- ledger account 'wallet:<party_id>' and can never go below zero: the CHECK
-- holds whatever the code above it does, and every change takes the row lock.
-- The version bumps with every change of anything a charge decision reads
-- (balance, PIN state, band rules, spend today).
CREATE TABLE wallets (
    party_id       uuid PRIMARY KEY,
    currency       char(3) NOT NULL,
    balance_minor  bigint NOT NULL DEFAULT 0 CHECK (balance_minor >= 0),
    version        bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    pin_hash       bytea,
    pin_failures   integer NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    pin_locked     boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL
);

-- Ledger accounts: 'wallet:<party_id>' (kind 1), 'merchant:<merchant_id>'
-- (kind 2) and 'external:<funding source>' (kind 3), the outside world that
-- top-ups come from. Only external accounts run below zero: their balance is
-- minus the money taken in. Merchant and external balances are the sum of their
-- postings (no hot row for every sale at a busy merchant to queue on).
CREATE TABLE accounts (
    account_id  text PRIMARY KEY,
    kind        smallint NOT NULL CHECK (kind IN (1, 2, 3)),
    currency    char(3) NOT NULL
);

CREATE TABLE ledger_entries (
    entry_id     uuid PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind         smallint NOT NULL,                  -- LedgerEntryKind
    party_id     uuid NOT NULL,
    charge_id    uuid,
    refund_id    uuid,
    reference    text NOT NULL DEFAULT '',
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- Postings: append-only, and every entry's postings sum to zero in one currency
-- (checked by the trigger below for each statement that inserts them).
CREATE TABLE postings (
    entry_id       uuid NOT NULL REFERENCES ledger_entries,
    account_id     text NOT NULL REFERENCES accounts,
    seq            bigint NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor <> 0),
    currency       char(3) NOT NULL,
    -- Wallet postings: the wallet's balance right after this one.
    balance_after  bigint CHECK (balance_after >= 0),
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (entry_id, account_id)
);
CREATE INDEX postings_by_account ON postings (account_id, seq);

CREATE FUNCTION postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_postings GROUP BY entry_id
        HAVING sum(amount_minor) <> 0 OR count(DISTINCT currency) <> 1 OR count(*) < 2
    ) THEN
        RAISE EXCEPTION 'unbalanced ledger entry' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER postings_balanced AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION postings_balanced();

CREATE FUNCTION postings_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger postings are never changed or removed'
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION postings_append_only();

-- A band's spending rules, set by an adult of its party. No row: the default
-- for the wearer's role (adults may charge without a limit, children may not).
CREATE TABLE band_rules (
    band_id            uuid PRIMARY KEY,
    party_id           uuid NOT NULL,
    guest_id           uuid NOT NULL,
    charging_enabled   boolean NOT NULL,
    daily_limit_minor  bigint CHECK (daily_limit_minor >= 0),
    updated_at         timestamptz NOT NULL
);
CREATE INDEX band_rules_by_guest ON band_rules (guest_id);

-- What each band spent on each venue day, net of refunds.
CREATE TABLE band_spend (
    band_id      uuid NOT NULL,
    day          date NOT NULL,
    spent_minor  bigint NOT NULL CHECK (spent_minor >= 0),
    PRIMARY KEY (band_id, day)
);

-- Every charge, approved or declined (declines are kept for audit). The row is
-- also the charge's idempotency record, like taps.
CREATE TABLE charges (
    charge_id       uuid PRIMARY KEY,
    scope           text NOT NULL,
    idem_key        text NOT NULL,
    request_hash    bytea NOT NULL,
    reply           bytea NOT NULL,
    result          smallint NOT NULL,               -- ChargeResult
    decline_reason  smallint NOT NULL DEFAULT 0,     -- DeclineReason
    merchant_id     text NOT NULL,
    party_id        uuid,
    guest_id        uuid,
    band_id         uuid,
    items           bytea[] NOT NULL DEFAULT '{}',   -- serialized LineItem messages
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        char(3) NOT NULL,
    refunded_minor  bigint NOT NULL DEFAULT 0,
    charged_at      timestamptz NOT NULL,
    day             date NOT NULL,
    created_by      text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, idem_key),
    -- Refunds never exceed the charge, and only approved charges are refunded.
    CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    CHECK (result = 1 OR refunded_minor = 0)
);
CREATE INDEX charges_by_party ON charges (party_id, charged_at);

CREATE TABLE refunds (
    refund_id     uuid PRIMARY KEY,
    charge_id     uuid NOT NULL REFERENCES charges,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    reason        text NOT NULL DEFAULT '',
    refunded_at   timestamptz NOT NULL,
    created_by    text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_by_charge ON refunds (charge_id);

-- --- the two hot paths, one round trip each ----------------------------------

-- Record a decided tap: the tap (its own idempotency record), the change of the
-- guest's presence or entitlement it makes, and its events. Returns 0 when
-- recorded, 1 when the key was already used (the caller reads the stored
-- reply). When the decision read guest state (p_version not NULL) and that
-- state changed since, nothing is written: SQLSTATE VT409, and the caller
-- decides again on fresh state.
CREATE FUNCTION record_tap(
    p_scope text, p_key text, p_hash bytea, p_reply bytea, p_tap_id uuid,
    p_access_point text, p_guest uuid, p_party uuid, p_decision smallint,
    p_reason smallint, p_entitlement uuid, p_tapped_at timestamptz,
    p_version bigint, p_inside boolean, p_presence_day date,
    p_use_status smallint, p_use_days integer, p_use_last_day date, p_use_entries integer,
    p_event_kinds text[], p_event_keys text[], p_event_payloads bytea[],
    p_traceparent text, p_channel text
) RETURNS smallint LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO taps (scope, idem_key, request_hash, reply, tap_id, access_point_id, guest_id,
                      decision, deny_reason, entitlement_id, tapped_at)
    VALUES (p_scope, p_key, p_hash, p_reply, p_tap_id, p_access_point, p_guest,
            p_decision, p_reason, p_entitlement, p_tapped_at)
    ON CONFLICT (scope, idem_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 1;
    END IF;

    IF p_version IS NOT NULL THEN
        IF p_inside IS NOT NULL OR p_use_status IS NOT NULL THEN
            IF p_version = 0 THEN
                INSERT INTO holders (guest_id, party_id, version, inside, presence_day)
                VALUES (p_guest, p_party, 1, coalesce(p_inside, false), p_presence_day)
                ON CONFLICT (guest_id) DO NOTHING;
            ELSE
                UPDATE holders
                   SET version = version + 1,
                       inside = coalesce(p_inside, inside),
                       presence_day = CASE WHEN p_inside IS NULL THEN presence_day
                                           ELSE p_presence_day END
                 WHERE guest_id = p_guest AND version = p_version;
            END IF;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'guest state changed' USING ERRCODE = 'VT409';
            END IF;
        ELSIF p_version = 0 THEN
            PERFORM 1 FROM holders WHERE guest_id = p_guest;
            IF FOUND THEN
                RAISE EXCEPTION 'guest state changed' USING ERRCODE = 'VT409';
            END IF;
        ELSE
            PERFORM 1 FROM holders WHERE guest_id = p_guest AND version = p_version FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'guest state changed' USING ERRCODE = 'VT409';
            END IF;
        END IF;
    END IF;

    IF p_use_status IS NOT NULL THEN
        UPDATE entitlements
           SET status = p_use_status,
               days_used = coalesce(p_use_days, days_used),
               last_day = coalesce(p_use_last_day, last_day),
               entries_last_day = coalesce(p_use_entries, entries_last_day),
               last_used_at = p_tapped_at
         WHERE entitlement_id = p_entitlement;
    END IF;

    IF cardinality(p_event_kinds) > 0 THEN
        INSERT INTO events (kind, key, payload, occurred_at, traceparent)
        SELECT k, ky, pl, p_tapped_at, p_traceparent
          FROM unnest(p_event_kinds, p_event_keys, p_event_payloads) AS e(k, ky, pl);
        PERFORM pg_notify(p_channel, '');
    END IF;
    RETURN 0;
END $$;

-- Record a decided charge: the charge (its own idempotency record), the
-- wallet's change (debit, PIN attempts) under its row lock, the band's spend,
-- the ledger entry and its postings, and the event. Returns 0 when recorded, 1
-- when the key was already used. If the wallet changed since the decision read
-- it (p_version), nothing is written: SQLSTATE VT409.
CREATE FUNCTION record_charge(
    p_scope text, p_key text, p_hash bytea, p_reply bytea, p_charge_id uuid,
    p_result smallint, p_reason smallint, p_merchant text, p_party uuid, p_guest uuid,
    p_band uuid, p_items bytea[], p_amount bigint, p_currency char(3),
    p_charged_at timestamptz, p_day date, p_created_by text,
    p_version bigint, p_debit bigint, p_pin_failures integer, p_pin_locked boolean,
    p_entry_id uuid, p_post_accounts text[], p_post_amounts bigint[],
    p_event_payload bytea, p_traceparent text, p_channel text
) RETURNS smallint LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_seq bigint;
BEGIN
    INSERT INTO charges (charge_id, scope, idem_key, request_hash, reply, result, decline_reason,
                         merchant_id, party_id, guest_id, band_id, items, amount_minor, currency,
                         charged_at, day, created_by)
    VALUES (p_charge_id, p_scope, p_key, p_hash, p_reply, p_result, p_reason,
            p_merchant, p_party, p_guest, p_band, p_items, p_amount, p_currency,
            p_charged_at, p_day, p_created_by)
    ON CONFLICT (scope, idem_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 1;
    END IF;

    IF p_version IS NOT NULL THEN
        IF p_version = 0 THEN
            -- The decision saw no wallet; it must still not exist.
            PERFORM 1 FROM wallets WHERE party_id = p_party;
            IF FOUND THEN
                RAISE EXCEPTION 'wallet changed' USING ERRCODE = 'VT409';
            END IF;
        ELSIF p_debit > 0 OR p_pin_failures IS NOT NULL THEN
            UPDATE wallets
               SET version = version + 1,
                   balance_minor = balance_minor - p_debit,
                   pin_failures = coalesce(p_pin_failures, pin_failures),
                   pin_locked = coalesce(p_pin_locked, pin_locked),
                   updated_at = now()
             WHERE party_id = p_party AND version = p_version
            RETURNING balance_minor INTO v_balance;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'wallet changed' USING ERRCODE = 'VT409';
            END IF;
        ELSE
            PERFORM 1 FROM wallets WHERE party_id = p_party AND version = p_version FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'wallet changed' USING ERRCODE = 'VT409';
            END IF;
        END IF;
    END IF;

    IF p_debit > 0 THEN
        IF p_band IS NOT NULL THEN
            INSERT INTO band_spend (band_id, day, spent_minor) VALUES (p_band, p_day, p_debit)
            ON CONFLICT (band_id, day) DO UPDATE
               SET spent_minor = band_spend.spent_minor + EXCLUDED.spent_minor;
        END IF;
        INSERT INTO ledger_entries (entry_id, kind, party_id, charge_id, occurred_at)
        VALUES (p_entry_id, 2, p_party, p_charge_id, p_charged_at)
        RETURNING seq INTO v_seq;
        INSERT INTO postings (entry_id, account_id, seq, amount_minor, currency, balance_after,
                              occurred_at)
        SELECT p_entry_id, a, v_seq, amt, p_currency,
               CASE WHEN a = 'wallet:' || p_party THEN v_balance END, p_charged_at
          FROM unnest(p_post_accounts, p_post_amounts) AS x(a, amt);
        INSERT INTO events (kind, key, payload, occurred_at, traceparent)
        VALUES ('charge_recorded', p_party::text, p_event_payload, p_charged_at, p_traceparent);
        PERFORM pg_notify(p_channel, '');
    END IF;
    RETURN 0;
END $$;
