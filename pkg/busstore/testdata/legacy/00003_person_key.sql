-- +goose Up

-- The keyed pseudonym of the person a referral is about (HMAC-SHA256 of the
-- national id with the network key); the id itself is never stored.
ALTER TABLE referral ADD COLUMN person_key text NOT NULL DEFAULT '';
CREATE INDEX referral_person ON referral (person_key, created_at DESC) WHERE person_key <> '';

-- +goose Down
DROP INDEX referral_person;
ALTER TABLE referral DROP COLUMN person_key;
