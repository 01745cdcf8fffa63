-- +goose Up

-- consent_hold for a group of new referrals at once (commit.go writes them
-- set-wise): every consent must be valid and is held FOR SHARE until the
-- transaction ends, so a revocation waits for the referrals, then sees them.
-- A consent revoked meanwhile is re-checked after the lock and missed, so
-- fewer rows are held than asked for.
-- +goose StatementBegin
CREATE FUNCTION consent_hold_all(consent_ids uuid[], at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    wanted integer;
    held integer;
BEGIN
    SELECT count(DISTINCT id) INTO wanted FROM unnest(consent_ids) AS u(id);
    SELECT count(*) INTO held FROM (
        SELECT 1 FROM consent c
        WHERE c.id = ANY(consent_ids) AND c.revoked_at IS NULL AND c.expires_at > at
        ORDER BY c.id
        FOR SHARE
    ) AS h;
    IF held < wanted THEN
        RAISE EXCEPTION 'a consent of the group is revoked, expired or unknown' USING ERRCODE = 'RB001';
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION consent_hold_all(uuid[], timestamptz);
