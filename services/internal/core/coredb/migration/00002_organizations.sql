-- +goose Up

-- Referrals are addressed to organizations, which nodes host (one or
-- many): a referral goes from an organization of this node to one of
-- another node's, or the other way (from_agency and to_agency stay the
-- nodes). A caseworker works for one organization of the node.
--
-- Rows made before are filed under the organization a node has when it
-- names none: one whose id is the node's name.

ALTER TABLE core.referral
    ADD COLUMN from_org      text NOT NULL DEFAULT '',
    ADD COLUMN to_org        text NOT NULL DEFAULT '',
    -- Set when the receiver forwarded it: the new referral's organization.
    ADD COLUMN forwarded_org text NOT NULL DEFAULT '';
UPDATE core.referral SET from_org = from_agency, to_org = to_agency, forwarded_org = forwarded_agency;

-- An organization's inbox and sent list, newest first; the node's own
-- (its supervisors') keep referral_incoming and referral_outgoing.
CREATE INDEX referral_incoming_org ON core.referral (to_agency, to_org, created_at DESC, id);
CREATE INDEX referral_outgoing_org ON core.referral (from_agency, from_org, created_at DESC, id);

-- The overdue referrals the coordinator sees, with their organizations.
ALTER TABLE core.escalation
    ADD COLUMN from_org text NOT NULL DEFAULT '',
    ADD COLUMN to_org   text NOT NULL DEFAULT '';
UPDATE core.escalation SET from_org = from_agency, to_org = to_agency;

-- A consent is to share with one organization (to_agency is its node).
ALTER TABLE core.consent ADD COLUMN to_org text NOT NULL DEFAULT '';
UPDATE core.consent SET to_org = to_agency;

-- The organization a caseworker works for: they see its referrals only.
-- Empty: the node's own people (supervisors, auditors), who see every
-- organization of the node.
ALTER TABLE core.web_user ADD COLUMN org text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE core.web_user DROP COLUMN org;
ALTER TABLE core.consent DROP COLUMN to_org;
ALTER TABLE core.escalation DROP COLUMN to_org, DROP COLUMN from_org;
DROP INDEX core.referral_outgoing_org;
DROP INDEX core.referral_incoming_org;
ALTER TABLE core.referral DROP COLUMN forwarded_org, DROP COLUMN to_org, DROP COLUMN from_org;
