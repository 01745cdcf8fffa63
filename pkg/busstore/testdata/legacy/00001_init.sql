-- +goose Up

-- referral is this agency's record of every referral it sent or received.
-- from_agency = this agency: outgoing; to_agency = this agency: incoming.
CREATE TABLE referral (
    id             uuid PRIMARY KEY,
    case_id        uuid        NOT NULL,
    from_agency    text        NOT NULL,
    to_agency      text        NOT NULL CHECK (to_agency <> from_agency),
    service        text        NOT NULL,
    note           text        NOT NULL,
    status         text        NOT NULL,
    -- Why the receiving agency refused the event at the bus (schema,
    -- signature, addressing); empty when it was delivered.
    delivery_error text        NOT NULL DEFAULT '',
    -- Sequence of the last event about this referral that this agency sent
    -- (seq_out) and that it applied from the other party (seq_in).
    seq_out        integer     NOT NULL DEFAULT 0,
    seq_in         integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_incoming ON referral (to_agency, created_at DESC, id);
CREATE INDEX referral_outgoing ON referral (from_agency, created_at DESC, id);
CREATE INDEX referral_case ON referral (case_id);

-- outbox keeps every event this agency sent, in the transaction that caused
-- it. Rows are never deleted: they are the sender's evidence.
CREATE TABLE outbox (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction; the relay publishes only rows of transactions
    -- older than every running one, so it never skips a late commit.
    txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL,
    subject         text        NOT NULL,
    msg_id          text        NOT NULL,
    traceparent     text        NOT NULL DEFAULT '',
    payload         bytea       NOT NULL,
    wants_receipt   boolean     NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at    timestamptz,
    stream_seq      bigint,
    -- How often the reconciler re-sent the event for want of a receipt.
    republished     integer     NOT NULL DEFAULT 0,
    receipted_at    timestamptz,
    receipt_outcome text CHECK (receipt_outcome IN ('applied', 'rejected')),
    receipt_reason  text
);
CREATE INDEX outbox_pending ON outbox (txid, seq) WHERE published_at IS NULL;
CREATE INDEX outbox_awaiting_receipt ON outbox (published_at) WHERE wants_receipt AND receipted_at IS NULL;

-- inbox records every event this agency received, applied or rejected, in
-- the transaction of its effect: the primary key makes delivery idempotent.
-- An event that could not even be decoded is keyed by its stream sequence
-- (source '', event_id 'stream:<seq>').
CREATE TABLE inbox (
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
CREATE INDEX inbox_rejected ON inbox (received_at) WHERE outcome = 'rejected';

-- dead_letter holds events JetStream gave up redelivering (MaxDeliver), from
-- its advisories, so they can be re-driven through the same handler.
CREATE TABLE dead_letter (
    stream_seq  bigint PRIMARY KEY,
    subject     text        NOT NULL,
    deliveries  integer     NOT NULL,
    noted_at    timestamptz NOT NULL DEFAULT now(),
    redriven_at timestamptz
);

-- +goose Down
DROP TABLE dead_letter;
DROP TABLE inbox;
DROP TABLE outbox;
DROP TABLE referral;
