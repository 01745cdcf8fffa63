-- +goose Up

-- The bus's tables, in schema bus. A store made before the bus had its own
-- migration line holds them in public, at the shape the application's
-- migrations 00001-00019 gave them: they are moved here with their rows,
-- indexes and sequences, and everything below then finds them in place. A
-- fresh store gets them from the CREATE statements, in the same shape.

-- pgmigrate.Up makes the schema first, for its version table; a store
-- migrated by other means gets it here.
CREATE SCHEMA IF NOT EXISTS bus;

-- A store with the old tables but not their final shape would be adopted
-- half-made: it must run the application's migrations up to 00019 first.
-- +goose StatementBegin
DO $$
BEGIN
    IF to_regclass('public.outbox') IS NOT NULL
       AND (to_regclass('public.relay_cursor') IS NULL OR to_regclass('public.outbox_awaiting') IS NULL) THEN
        RAISE EXCEPTION 'public.outbox predates the relay cursor and outbox_awaiting: apply the store''s migrations up to 00019 before the bus''s';
    END IF;
END
$$;
-- +goose StatementEnd

ALTER TABLE IF EXISTS public.outbox SET SCHEMA bus;
ALTER TABLE IF EXISTS public.outbox_published SET SCHEMA bus;
ALTER TABLE IF EXISTS public.outbox_awaiting SET SCHEMA bus;
ALTER TABLE IF EXISTS public.relay_cursor SET SCHEMA bus;
ALTER TABLE IF EXISTS public.inbox SET SCHEMA bus;
ALTER TABLE IF EXISTS public.dead_letter SET SCHEMA bus;

-- outbox keeps every event this node sent, written in the transaction that
-- caused it. Rows are never deleted: they are the sender's evidence. Half
-- of each page is left free for the versions a signature and a receipt
-- write, so both are in-place (HOT) updates.
CREATE TABLE IF NOT EXISTS bus.outbox (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    subject         text        NOT NULL,
    msg_id          text        NOT NULL,
    traceparent     text        NOT NULL DEFAULT '',
    payload         bytea       NOT NULL,
    wants_receipt   boolean     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- How often the relay sent the event again for want of a receipt.
    republished     integer     NOT NULL DEFAULT 0,
    receipted_at    timestamptz,
    receipt_outcome text CHECK (receipt_outcome IN ('applied', 'rejected')),
    receipt_reason  text,
    -- The event's place in the node's hash chain (schemas/SIGNING.md) and
    -- its chain hash; the row with the highest chain_pos is the head.
    chain_pos       bigint,
    chain_hash      text,
    -- The writing transaction: the relay publishes in commit order, only
    -- rows of transactions older than every running one.
    txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- When the relay last sent the event again for want of a receipt. Not
    -- indexed, so recording it is an in-place update.
    resent_at       timestamptz
) WITH (fillfactor = 50);
-- (A store adopted from before 00019 of the old line had 80.)
ALTER TABLE bus.outbox SET (fillfactor = 50);
CREATE UNIQUE INDEX IF NOT EXISTS outbox_chain ON bus.outbox (chain_pos) WHERE chain_pos IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_commit_order ON bus.outbox (txid, seq);

-- outbox_published says where and when each event was first published.
-- Append-only and narrow, written by the relay in the statement that moves
-- its cursor. No foreign key to outbox: checking it would lock and dirty
-- the outbox row of every event.
CREATE TABLE IF NOT EXISTS bus.outbox_published (
    seq          bigint PRIMARY KEY,
    stream_seq   bigint      NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);

-- outbox_awaiting lists the events still waiting for their receipt: a row
-- is added with the event and deleted when its receipt comes, so that
-- recording a receipt changes no indexed column of outbox.
CREATE TABLE IF NOT EXISTS bus.outbox_awaiting (
    seq        bigint PRIMARY KEY,
    created_at timestamptz NOT NULL
);

-- relay_cursor is the last (txid, seq) the relay recorded as published:
-- every row before it in that order was published.
CREATE TABLE IF NOT EXISTS bus.relay_cursor (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    txid xid8   NOT NULL,
    seq  bigint NOT NULL
);
INSERT INTO bus.relay_cursor (txid, seq)
SELECT '0', 0
WHERE NOT EXISTS (SELECT 1 FROM bus.relay_cursor);

-- inbox records every event this node received, applied or rejected, in
-- the transaction of its effect: the primary key makes delivery
-- idempotent. An event that could not even be decoded is keyed by its
-- stream sequence (source '', event_id 'stream:<seq>').
CREATE TABLE IF NOT EXISTS bus.inbox (
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    subject     text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    reason      text        NOT NULL DEFAULT '',
    -- The message as received, kept for rejected events so an operator can
    -- see what came.
    payload     bytea,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_rejected ON bus.inbox (received_at) WHERE outcome = 'rejected';
-- The newest received_at, for "something changed" marks.
CREATE INDEX IF NOT EXISTS inbox_received ON bus.inbox (received_at);

-- dead_letter holds events JetStream gave up redelivering (MaxDeliver),
-- from its advisories, so they can be re-driven through the same handler.
CREATE TABLE IF NOT EXISTS bus.dead_letter (
    stream_seq  bigint PRIMARY KEY,
    subject     text        NOT NULL,
    deliveries  integer     NOT NULL,
    noted_at    timestamptz NOT NULL DEFAULT now(),
    redriven_at timestamptz
);

-- +goose Down
DROP TABLE bus.dead_letter;
DROP TABLE bus.inbox;
DROP TABLE bus.relay_cursor;
DROP TABLE bus.outbox_awaiting;
DROP TABLE bus.outbox_published;
DROP TABLE bus.outbox;
