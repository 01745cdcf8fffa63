-- +goose Up

CREATE SCHEMA IF NOT EXISTS ngo;

-- An NGO's work records, in the schema "ngo". A store made before the
-- kinds had migration lines of their own kept them in "public": they move
-- here as they are.
ALTER TABLE IF EXISTS public.capacity SET SCHEMA ngo;
ALTER TABLE IF EXISTS public.placement SET SCHEMA ngo;

-- capacity is how many places the node has for a service that takes
-- people in (shelter beds), and how many are taken; the directory
-- publishes the difference. Beds come from the node's configuration.
CREATE TABLE IF NOT EXISTS ngo.capacity (
    service text    PRIMARY KEY,
    beds    integer NOT NULL CHECK (beds >= 0),
    used    integer NOT NULL DEFAULT 0 CHECK (used >= 0)
);

-- placement is a stay in a shelter, at most six months. The address is
-- confidential: it goes only to the node that referred the family.
CREATE TABLE IF NOT EXISTS ngo.placement (
    id          uuid PRIMARY KEY,
    referral_id uuid NOT NULL REFERENCES core.referral (id),
    case_id     uuid NOT NULL,
    service     text NOT NULL REFERENCES ngo.capacity (service),
    bed         text NOT NULL,
    address     text NOT NULL,
    starts_on   date NOT NULL,
    ends_on     date NOT NULL,
    ended_at    timestamptz,
    CHECK (ends_on > starts_on AND ends_on <= starts_on + interval '6 months')
);
CREATE UNIQUE INDEX IF NOT EXISTS placement_referral ON ngo.placement (referral_id);
CREATE UNIQUE INDEX IF NOT EXISTS placement_bed_taken ON ngo.placement (service, bed) WHERE ended_at IS NULL;

-- +goose Down
DROP TABLE ngo.placement;
DROP TABLE ngo.capacity;
