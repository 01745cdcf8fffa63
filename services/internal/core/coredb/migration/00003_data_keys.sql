-- +goose Up

-- A referral's data key: what it says about the family travels sealed
-- under it (pkg/event's sealed form). The sender makes it and sends it
-- wrapped to the receiver, which keeps it here too. Destroying it (a
-- revoked consent, an erased person) leaves the stream's copies of the
-- referral's events unreadable. NULL: never had one (made before
-- sealing) or destroyed (key_destroyed_at says when).
ALTER TABLE core.referral
    ADD COLUMN data_key         bytea,
    ADD COLUMN key_destroyed_at timestamptz;

-- A node's sealing keys of the day: data keys are wrapped to the newest
-- (the node's listing gives its public half, signed by the node), and a
-- key is destroyed once retired and everything sent to it was taken in.
-- From then on what the stream holds wrapped to it opens for no one, so
-- destroying a referral's data keys at its two nodes leaves its events
-- on the stream unreadable to anyone, for good.
CREATE TABLE core.epoch_key (
    id           text PRIMARY KEY,
    private_key  bytea,       -- NULL once destroyed
    public_key   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    destroyed_at timestamptz
);

-- Addresses a shelter disclosed (at the shelter: to whom, why, until
-- when, without the address, which its placement holds) or was told
-- (at the node of the organization it was disclosed to, with the
-- address), until they expire.
CREATE TABLE core.address_disclosure (
    id          uuid PRIMARY KEY,
    case_id     uuid NOT NULL,
    referral_id uuid,          -- the shelter's referral, at the shelter
    from_node   text NOT NULL,
    from_org    text NOT NULL,
    to_node     text NOT NULL,
    to_org      text NOT NULL,
    purpose     text NOT NULL,
    address     text NOT NULL DEFAULT '',
    until       timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX address_disclosure_to ON core.address_disclosure (to_org, until);

-- +goose Down
DROP TABLE core.address_disclosure;
DROP TABLE core.epoch_key;
ALTER TABLE core.referral DROP COLUMN data_key, DROP COLUMN key_destroyed_at;
