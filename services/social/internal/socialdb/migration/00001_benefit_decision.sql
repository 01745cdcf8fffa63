-- +goose Up

CREATE SCHEMA IF NOT EXISTS social;

-- social protection's work records, in the schema "social". A store made
-- before the kinds had migration lines of their own kept them in
-- "public": they move here as they are.
ALTER TABLE IF EXISTS public.benefit_decision SET SCHEMA social;

-- benefit_decision is a decision on a benefit for a family.
CREATE TABLE IF NOT EXISTS social.benefit_decision (
    id          uuid PRIMARY KEY,
    referral_id uuid REFERENCES core.referral (id),
    case_id     uuid        NOT NULL,
    benefit     text        NOT NULL,
    decision    text        NOT NULL CHECK (decision IN ('granted', 'refused')),
    monthly_kzt integer     NOT NULL DEFAULT 0 CHECK (monthly_kzt >= 0),
    reason      text        NOT NULL DEFAULT '',
    decided_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (decision = 'granted' OR monthly_kzt = 0)
);

-- +goose Down
DROP TABLE social.benefit_decision;
