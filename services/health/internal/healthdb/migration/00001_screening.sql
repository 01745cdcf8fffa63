-- +goose Up

CREATE SCHEMA IF NOT EXISTS health;

-- health's work records, in the schema "health". A store made before the
-- kinds had migration lines of their own kept them in "public": they move
-- here as they are.
ALTER TABLE IF EXISTS public.screening SET SCHEMA health;

-- screening is a health check of a child or a mother (a patronage visit,
-- a pediatric check), made for a referral or on its own.
CREATE TABLE IF NOT EXISTS health.screening (
    id          uuid PRIMARY KEY,
    referral_id uuid REFERENCES core.referral (id),
    case_id     uuid        NOT NULL,
    kind        text        NOT NULL,
    result      text        NOT NULL CHECK (result IN ('normal', 'concern', 'urgent')),
    findings    text        NOT NULL DEFAULT '',
    screened_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE health.screening;
