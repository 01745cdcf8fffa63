-- +goose Up

-- capacity is how many places this agency has for a service that takes
-- people in (shelter beds), and how many are taken; the service directory
-- publishes the difference. Beds come from the agency's configuration.
CREATE TABLE capacity (
    service text    PRIMARY KEY,
    beds    integer NOT NULL CHECK (beds >= 0),
    used    integer NOT NULL DEFAULT 0 CHECK (used >= 0)
);

-- Each agency's own work, in its own store. A row may belong to the
-- referral it was done for; the events of that referral carry it to the
-- other party, which keeps what it received in referral.work.

-- health: screenings (patronage visits, pediatric checks).
CREATE TABLE screening (
    id          uuid PRIMARY KEY,
    referral_id uuid REFERENCES referral (id),
    case_id     uuid        NOT NULL,
    kind        text        NOT NULL,
    result      text        NOT NULL CHECK (result IN ('normal', 'concern', 'urgent')),
    findings    text        NOT NULL DEFAULT '',
    screened_at timestamptz NOT NULL DEFAULT now()
);

-- education: assessments (PMPK) and the individual learning plans opened
-- from them.
CREATE TABLE assessment (
    id          uuid PRIMARY KEY,
    referral_id uuid REFERENCES referral (id),
    case_id     uuid        NOT NULL,
    conclusion  text        NOT NULL,
    needs_support boolean   NOT NULL,
    assessed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE learning_plan (
    id            uuid PRIMARY KEY,
    assessment_id uuid NOT NULL REFERENCES assessment (id),
    referral_id   uuid REFERENCES referral (id),
    case_id       uuid NOT NULL,
    programme     text NOT NULL,
    goals         text NOT NULL,
    starts_on     date NOT NULL,
    review_on     date NOT NULL CHECK (review_on > starts_on)
);

-- social: benefit decisions.
CREATE TABLE benefit_decision (
    id            uuid PRIMARY KEY,
    referral_id   uuid REFERENCES referral (id),
    case_id       uuid        NOT NULL,
    benefit       text        NOT NULL,
    decision      text        NOT NULL CHECK (decision IN ('granted', 'refused')),
    monthly_kzt   integer     NOT NULL DEFAULT 0 CHECK (monthly_kzt >= 0),
    reason        text        NOT NULL DEFAULT '',
    decided_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (decision = 'granted' OR monthly_kzt = 0)
);

-- ngo: shelter placements. A stay lasts at most six months; the address
-- is confidential: it goes only to the agency that referred the family.
CREATE TABLE placement (
    id          uuid PRIMARY KEY,
    referral_id uuid NOT NULL REFERENCES referral (id),
    case_id     uuid NOT NULL,
    service     text NOT NULL REFERENCES capacity (service),
    bed         text NOT NULL,
    address     text NOT NULL,
    starts_on   date NOT NULL,
    ends_on     date NOT NULL,
    ended_at    timestamptz,
    CHECK (ends_on > starts_on AND ends_on <= starts_on + interval '6 months')
);
CREATE UNIQUE INDEX placement_referral ON placement (referral_id);
CREATE UNIQUE INDEX placement_bed_taken ON placement (service, bed) WHERE ended_at IS NULL;

-- The work records the events of a referral carried, either way, as they
-- carried them; erased with the rest of the shared data when the consent
-- is revoked.
ALTER TABLE referral ADD COLUMN work jsonb;

-- +goose Down
ALTER TABLE referral DROP COLUMN work;
DROP TABLE placement;
DROP TABLE benefit_decision;
DROP TABLE learning_plan;
DROP TABLE assessment;
DROP TABLE screening;
DROP TABLE capacity;
