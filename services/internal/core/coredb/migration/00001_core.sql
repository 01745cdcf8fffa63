-- +goose Up

CREATE SCHEMA IF NOT EXISTS core;

-- The core's tables, in the schema "core": what every kind of node keeps
-- of its referrals, cases, consents, deadlines and caseworkers. A store
-- made before the core had a migration line of its own (one line for
-- everything, in "public") is adopted: its tables move here as they are,
-- data and indexes with them; on a new store they are created.

ALTER TABLE IF EXISTS public.referral SET SCHEMA core;
ALTER TABLE IF EXISTS public.referral_history SET SCHEMA core;
ALTER TABLE IF EXISTS public.sla_timer SET SCHEMA core;
ALTER TABLE IF EXISTS public.escalation SET SCHEMA core;
ALTER TABLE IF EXISTS public.consent SET SCHEMA core;
ALTER TABLE IF EXISTS public.agency_key SET SCHEMA core;
ALTER TABLE IF EXISTS public.web_user SET SCHEMA core;
ALTER TABLE IF EXISTS public.web_session SET SCHEMA core;
-- The consent functions are made again below, naming their tables.
DROP FUNCTION IF EXISTS public.consent_hold(uuid, timestamptz);
DROP FUNCTION IF EXISTS public.consent_hold_all(uuid[], timestamptz);

-- referral is this node's record of every referral it sent or received:
-- from_agency = this node, outgoing; to_agency = this node, incoming.
CREATE TABLE IF NOT EXISTS core.referral (
    id                 uuid PRIMARY KEY,
    case_id            uuid        NOT NULL,
    from_agency        text        NOT NULL,
    to_agency          text        NOT NULL CHECK (to_agency <> from_agency),
    service            text        NOT NULL,
    note               text        NOT NULL,
    status             text        NOT NULL,
    -- Why the receiver refused the referral's event at the bus (schema,
    -- signature, addressing); empty when it was delivered.
    delivery_error     text        NOT NULL DEFAULT '',
    -- Sequence of the last move this node sent (seq_out) and applied from
    -- the other party (seq_in).
    seq_out            integer     NOT NULL DEFAULT 0,
    seq_in             integer     NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    parent_id          uuid,
    reason_code        text        NOT NULL DEFAULT '',
    reason             text        NOT NULL DEFAULT '',
    outcome            text        NOT NULL DEFAULT '',
    -- Set when the receiver forwarded it: the new referral and its node.
    forwarded_to       uuid,
    forwarded_agency   text        NOT NULL DEFAULT '',
    -- The W3C trace that began the chain of help, carried by every event.
    traceparent        text        NOT NULL DEFAULT '',
    -- The keyed pseudonym of the person (HMAC-SHA256 of the national id
    -- with the network key); the id itself is never stored.
    person_key         text        NOT NULL DEFAULT '',
    received_at        timestamptz,
    overdue_at         timestamptz,
    -- The consent the referral was made under, as the sender sent it.
    consent_id         uuid,
    consent_purpose    text        NOT NULL DEFAULT '',
    consent_categories text[]      NOT NULL DEFAULT '{}',
    consent_expires_at timestamptz,
    consent_revoked_at timestamptz,
    redacted_at        timestamptz,
    -- The work records the referral's events carried, either way.
    work               jsonb
);
-- Room on each page for the versions a referral's moves and receipt
-- write, so they are made in place (HOT): no index covers status.
ALTER TABLE core.referral SET (fillfactor = 50);
CREATE INDEX IF NOT EXISTS referral_incoming ON core.referral (to_agency, created_at DESC, id);
CREATE INDEX IF NOT EXISTS referral_outgoing ON core.referral (from_agency, created_at DESC, id);
CREATE INDEX IF NOT EXISTS referral_case ON core.referral (case_id);
CREATE INDEX IF NOT EXISTS referral_person ON core.referral (person_key, created_at DESC) WHERE person_key <> '';
CREATE INDEX IF NOT EXISTS referral_consent ON core.referral (consent_id) WHERE consent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS referral_overdue ON core.referral (to_agency, created_at DESC) WHERE overdue_at IS NOT NULL;

-- referral_history is one row per move of a referral, made here or
-- applied from the other party: the case timeline. The request and the
-- receipt are on the referral row itself.
CREATE TABLE IF NOT EXISTS core.referral_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id uuid        NOT NULL REFERENCES core.referral (id),
    case_id     uuid        NOT NULL,
    agency      text        NOT NULL,
    move        text        NOT NULL,
    status      text        NOT NULL,
    reason_code text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS referral_history_referral ON core.referral_history (referral_id, id);
CREATE INDEX IF NOT EXISTS referral_history_case ON core.referral_history (case_id, id);

-- sla_timer holds the deadlines the sending node waits on: acceptance,
-- then completion. A timer fires once (fired_at, set in the transaction
-- that sends the overdue events) and is cleared when the move it waits
-- for is made or the referral ends.
CREATE TABLE IF NOT EXISTS core.sla_timer (
    referral_id uuid        NOT NULL REFERENCES core.referral (id),
    kind        text        NOT NULL CHECK (kind IN ('accept', 'complete')),
    due_at      timestamptz NOT NULL,
    fired_at    timestamptz,
    cleared_at  timestamptz,
    PRIMARY KEY (referral_id, kind)
);
CREATE INDEX IF NOT EXISTS sla_timer_due ON core.sla_timer (due_at) WHERE fired_at IS NULL AND cleared_at IS NULL;

-- escalation is what the coordinator node sees of other nodes' overdue
-- referrals: enough to act, nothing of the case's content.
CREATE TABLE IF NOT EXISTS core.escalation (
    referral_id uuid        NOT NULL,
    kind        text        NOT NULL,
    case_id     uuid        NOT NULL,
    from_agency text        NOT NULL,
    to_agency   text        NOT NULL,
    service     text        NOT NULL,
    due_at      timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (referral_id, kind)
);

-- consent is what a family agreed this node may share: with which node,
-- for what purpose, which categories of data, until when. A referral
-- needs one that is valid when it is made; a revoked consent stays, as
-- evidence.
CREATE TABLE IF NOT EXISTS core.consent (
    id              uuid PRIMARY KEY,
    -- Who consented: the person or their legal representative. Never
    -- leaves this node.
    given_by        text        NOT NULL,
    person_key      text        NOT NULL DEFAULT '',
    to_agency       text        NOT NULL,
    purpose         text        NOT NULL,
    data_categories text[]      NOT NULL,
    expires_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoke_reason   text        NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS consent_recorded ON core.consent (recorded_at DESC, id);

-- consent_hold_all holds the consents of a group of new referrals for the
-- transaction that writes them, and fails it if any is revoked, expired or
-- unknown by then: a revocation that commits first is never outrun, and
-- one that comes later waits, then sees the referrals and revokes them
-- too. It keeps one generic plan per session: its array parameter
-- otherwise made Postgres plan the lookup anew on every call.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION core.consent_hold_all(consent_ids uuid[], at timestamptz) RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    wanted integer;
    held integer;
BEGIN
    SELECT count(DISTINCT id) INTO wanted FROM unnest(consent_ids) AS u(id);
    SELECT count(*) INTO held FROM (
        SELECT 1 FROM core.consent c
        WHERE c.id = ANY(consent_ids) AND c.revoked_at IS NULL AND c.expires_at > at
        ORDER BY c.id
        FOR SHARE
    ) AS h;
    IF held < wanted THEN
        RAISE EXCEPTION 'a consent of the group is revoked, expired or unknown' USING ERRCODE = 'RB001';
    END IF;
END
$$;
-- +goose StatementEnd

-- agency_key is this node's X25519 key for confidential fields: other
-- nodes seal fields meant for it alone (a shelter's address) to the public
-- half, which the service directory publishes. Made at first start.
CREATE TABLE IF NOT EXISTS core.agency_key (
    agency      text PRIMARY KEY,
    private_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- web_user is a person who signs in to this node's caseworker UI with a
-- password (the embedded default); people who sign in through the node's
-- OIDC provider get a row at their first sign-in, with no password.
CREATE TABLE IF NOT EXISTS core.web_user (
    username      text PRIMARY KEY,
    display_name  text        NOT NULL DEFAULT '',
    role          text        NOT NULL CHECK (role IN ('caseworker', 'supervisor', 'auditor')),
    -- bcrypt; empty for OIDC users, who cannot sign in with a password.
    password_hash text        NOT NULL DEFAULT '',
    lang          text        NOT NULL DEFAULT 'ru',
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- web_session is a signed-in browser. The cookie holds a random token;
-- only its SHA-256 is stored, so a copy of the table signs no one in.
CREATE TABLE IF NOT EXISTS core.web_session (
    token_hash bytea PRIMARY KEY,
    username   text        NOT NULL REFERENCES core.web_user (username) ON DELETE CASCADE,
    role       text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS web_session_expiry ON core.web_session (expires_at);

-- +goose Down
DROP TABLE core.web_session;
DROP TABLE core.web_user;
DROP TABLE core.agency_key;
DROP FUNCTION core.consent_hold_all(uuid[], timestamptz);
DROP TABLE core.consent;
DROP TABLE core.escalation;
DROP TABLE core.sla_timer;
DROP TABLE core.referral_history;
DROP TABLE core.referral;
