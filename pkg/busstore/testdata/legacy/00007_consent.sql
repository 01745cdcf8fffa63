-- +goose Up

-- consent is what a family agreed this agency may share: with which agency,
-- for what purpose, which categories of data, until when. A referral needs
-- one that is valid when it is made; a revoked consent stays, as evidence.
CREATE TABLE consent (
    id              uuid PRIMARY KEY,
    -- Who consented: the person or their legal representative (a role and
    -- a name, as the caseworker recorded it). Never leaves this agency.
    given_by        text        NOT NULL,
    -- The keyed pseudonym of the person it is about, if one was given.
    person_key      text        NOT NULL DEFAULT '',
    to_agency       text        NOT NULL,
    purpose         text        NOT NULL,
    data_categories text[]      NOT NULL,
    expires_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoke_reason   text        NOT NULL DEFAULT ''
);
CREATE INDEX consent_recorded ON consent (recorded_at DESC, id);

-- The consent a referral was made under, as the sender sent it; when it
-- was revoked; and when the receiver redacted the data shared under it.
ALTER TABLE referral
    ADD COLUMN consent_id         uuid,
    ADD COLUMN consent_purpose    text   NOT NULL DEFAULT '',
    ADD COLUMN consent_categories text[] NOT NULL DEFAULT '{}',
    ADD COLUMN consent_expires_at timestamptz,
    ADD COLUMN consent_revoked_at timestamptz,
    ADD COLUMN redacted_at        timestamptz;
CREATE INDEX referral_consent ON referral (consent_id) WHERE consent_id IS NOT NULL;

-- consent_hold locks a consent for the transaction that makes a referral
-- under it, and fails that transaction if the consent is revoked or expired
-- by then: a revocation that commits first is never outrun, and one that
-- comes later waits, then sees the referral and revokes it too.
-- +goose StatementBegin
CREATE FUNCTION consent_hold(consent_id uuid, at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM consent c
    WHERE c.id = consent_id AND c.revoked_at IS NULL AND c.expires_at > at
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consent % is revoked, expired or unknown', consent_id USING ERRCODE = 'RB001';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION consent_hold(uuid, timestamptz);
DROP INDEX referral_consent;
ALTER TABLE referral
    DROP COLUMN consent_id, DROP COLUMN consent_purpose, DROP COLUMN consent_categories,
    DROP COLUMN consent_expires_at, DROP COLUMN consent_revoked_at, DROP COLUMN redacted_at;
DROP TABLE consent;
