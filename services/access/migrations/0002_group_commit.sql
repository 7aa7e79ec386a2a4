-- Group commit of the hot paths: the taps (or charges) that arrive while the
-- previous round trip is in flight are recorded together, in one call and one
-- transaction, so a busy gate line pays for one commit and one round trip per
-- group instead of per tap. Each write runs the very function a lone write
-- runs (record_tap, record_charge) in its own subtransaction: a write whose
-- state changed since its decision (VT409) is undone alone and reported as 2,
-- any other error as 3 (the caller runs that write alone to see its error),
-- and the others still commit. Nothing is replied before the commit.
--
-- The caller orders a group by guest (by party for charges), so two groups in
-- flight at once take their row locks in the same order and cannot deadlock.

CREATE TYPE tap_write AS (
    scope text, idem_key text, hash bytea, reply bytea, tap_id uuid,
    access_point text, guest uuid, party uuid, decision smallint,
    reason smallint, entitlement uuid, tapped_at timestamptz,
    version bigint, inside boolean, presence_day date,
    use_status smallint, use_days integer, use_last_day date, use_entries integer,
    event_kinds text[], event_keys text[], event_payloads bytea[],
    traceparent text
);

CREATE FUNCTION record_taps(p_taps tap_write[], p_channel text)
RETURNS smallint[] LANGUAGE plpgsql AS $$
DECLARE
    t tap_write;
    v_out smallint[] := '{}';
BEGIN
    FOREACH t IN ARRAY p_taps LOOP
        BEGIN
            v_out := v_out || record_tap(
                t.scope, t.idem_key, t.hash, t.reply, t.tap_id, t.access_point, t.guest,
                t.party, t.decision, t.reason, t.entitlement, t.tapped_at, t.version,
                t.inside, t.presence_day, t.use_status, t.use_days, t.use_last_day,
                t.use_entries, t.event_kinds, t.event_keys, t.event_payloads,
                t.traceparent, p_channel);
        EXCEPTION
            WHEN SQLSTATE 'VT409' THEN
                v_out := v_out || 2::smallint;
            WHEN OTHERS THEN
                v_out := v_out || 3::smallint;
        END;
    END LOOP;
    RETURN v_out;
END $$;

CREATE TYPE charge_write AS (
    scope text, idem_key text, hash bytea, reply bytea, charge_id uuid,
    result smallint, reason smallint, merchant text, party uuid, guest uuid,
    band uuid, items bytea[], amount bigint, currency char(3),
    charged_at timestamptz, day date, created_by text,
    version bigint, debit bigint, pin_failures integer, pin_locked boolean,
    entry_id uuid, post_accounts text[], post_amounts bigint[],
    event_payload bytea, traceparent text
);

CREATE FUNCTION record_charges(p_charges charge_write[], p_channel text)
RETURNS smallint[] LANGUAGE plpgsql AS $$
DECLARE
    c charge_write;
    v_out smallint[] := '{}';
BEGIN
    FOREACH c IN ARRAY p_charges LOOP
        BEGIN
            v_out := v_out || record_charge(
                c.scope, c.idem_key, c.hash, c.reply, c.charge_id, c.result, c.reason,
                c.merchant, c.party, c.guest, c.band, c.items, c.amount, c.currency,
                c.charged_at, c.day, c.created_by, c.version, c.debit, c.pin_failures,
                c.pin_locked, c.entry_id, c.post_accounts, c.post_amounts,
                c.event_payload, c.traceparent, p_channel);
        EXCEPTION
            WHEN SQLSTATE 'VT409' THEN
                v_out := v_out || 2::smallint;
            WHEN OTHERS THEN
                v_out := v_out || 3::smallint;
        END;
    END LOOP;
    RETURN v_out;
END $$;
