-- +goose Up

-- What a caseworker acts on first. The referrer sets a referral's urgency
-- (the request carries it); the receiving node keeps, while its
-- organization has something to do, the deadline of that next move:
-- accept by the sender's deadline, then complete by its own. NULL when
-- there is nothing to do (an ended referral, or one this node sent), so
-- the needs-action view reads a small index in deadline order
-- (9999-12-31: to do, with no deadline). A status change alone keeps
-- its row version on the page (HOT): status is still in no index.
ALTER TABLE core.referral
    ADD COLUMN urgency     text NOT NULL DEFAULT 'routine' CHECK (urgency IN ('routine', 'urgent')),
    ADD COLUMN action_due  timestamptz,
    -- The caseworker of the receiving organization it is assigned to
    -- (a user name of this node), '' for none.
    ADD COLUMN assigned_to text NOT NULL DEFAULT '',
    -- When someone of the receiving organization first opened it: until
    -- then it is new.
    ADD COLUMN opened_at   timestamptz;
CREATE INDEX referral_action ON core.referral (to_agency, action_due, id) WHERE action_due IS NOT NULL;
CREATE INDEX referral_action_org ON core.referral (to_org, action_due, id) WHERE action_due IS NOT NULL;
CREATE INDEX referral_action_mine ON core.referral (assigned_to, action_due, id) WHERE action_due IS NOT NULL AND assigned_to <> '';

-- A case's number is what people say on the phone: the last 48 bits of
-- its id (random in every UUID this network makes), which the UI writes
-- in Crockford's base32 (web/casenumber.go). Every node derives the same
-- number from the same case, and finds it through this index.
-- +goose StatementBegin
CREATE FUNCTION core.case_number(id uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('x' || right(id::text, 12))::bit(48)::bigint $$;
-- +goose StatementEnd
CREATE INDEX referral_case_number ON core.referral (core.case_number(case_id));

-- Referrals open now are to do, with no deadline known. A node cannot
-- tell here which of its rows it sent, so those get one too; they are
-- never read (the needs-action view reads what this node received), and
-- lose it at their next move.
UPDATE core.referral SET action_due = '9999-12-31 00:00:00+00'
WHERE status NOT IN ('declined', 'completed', 'failed', 'cancelled', 'forwarded');

-- +goose Down
DROP INDEX core.referral_case_number;
DROP FUNCTION core.case_number(uuid);
ALTER TABLE core.referral DROP COLUMN opened_at, DROP COLUMN assigned_to, DROP COLUMN action_due, DROP COLUMN urgency;
