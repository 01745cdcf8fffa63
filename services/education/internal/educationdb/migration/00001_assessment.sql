-- +goose Up

CREATE SCHEMA IF NOT EXISTS education;

-- education's work records, in the schema "education". A store made
-- before the kinds had migration lines of their own kept them in
-- "public": they move here as they are.
ALTER TABLE IF EXISTS public.assessment SET SCHEMA education;
ALTER TABLE IF EXISTS public.learning_plan SET SCHEMA education;

-- assessment is a PMPK assessment of a child.
CREATE TABLE IF NOT EXISTS education.assessment (
    id            uuid PRIMARY KEY,
    referral_id   uuid REFERENCES core.referral (id),
    case_id       uuid        NOT NULL,
    conclusion    text        NOT NULL,
    needs_support boolean     NOT NULL,
    assessed_at   timestamptz NOT NULL DEFAULT now()
);

-- learning_plan is an individual learning plan opened from an assessment.
CREATE TABLE IF NOT EXISTS education.learning_plan (
    id            uuid PRIMARY KEY,
    assessment_id uuid NOT NULL REFERENCES education.assessment (id),
    referral_id   uuid REFERENCES core.referral (id),
    case_id       uuid NOT NULL,
    programme     text NOT NULL,
    goals         text NOT NULL,
    starts_on     date NOT NULL,
    review_on     date NOT NULL CHECK (review_on > starts_on)
);

-- +goose Down
DROP TABLE education.learning_plan;
DROP TABLE education.assessment;
