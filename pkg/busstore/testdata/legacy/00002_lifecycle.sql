-- +goose Up

-- The whole life of a referral: who moved it where, and why.
ALTER TABLE referral
    ADD COLUMN parent_id        uuid,
    ADD COLUMN reason_code      text NOT NULL DEFAULT '',
    ADD COLUMN reason           text NOT NULL DEFAULT '',
    ADD COLUMN outcome          text NOT NULL DEFAULT '',
    -- Set when the receiver forwarded it: the new referral and its agency.
    ADD COLUMN forwarded_to     uuid,
    ADD COLUMN forwarded_agency text NOT NULL DEFAULT '',
    -- The W3C trace that began the chain of help, carried by every event.
    ADD COLUMN traceparent      text NOT NULL DEFAULT '';

-- referral_history is one row per move of a referral, made here or applied
-- from the other party: the case timeline.
CREATE TABLE referral_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    referral_id uuid        NOT NULL REFERENCES referral (id),
    case_id     uuid        NOT NULL,
    agency      text        NOT NULL,
    move        text        NOT NULL,
    status      text        NOT NULL,
    reason_code text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    outcome     text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referral_history_referral ON referral_history (referral_id, id);
CREATE INDEX referral_history_case ON referral_history (case_id, id);

-- +goose Down
DROP TABLE referral_history;
ALTER TABLE referral
    DROP COLUMN parent_id, DROP COLUMN reason_code, DROP COLUMN reason, DROP COLUMN outcome,
    DROP COLUMN forwarded_to, DROP COLUMN forwarded_agency, DROP COLUMN traceparent;
