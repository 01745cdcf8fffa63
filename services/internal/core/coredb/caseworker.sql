-- Queries of the caseworker's day (core/app/caseworker.go): what to act
-- on first, who acts, and a family's case by its number or person.
-- Each needs-action query has the one index that serves both its filter
-- and its order (migration 00004), so its plan is the same whatever the
-- statistics say.

-- name: ActionAll :many
-- The referrals this node received that it has to act on, the nearest
-- deadline first; after_due/after_id page forwards.
SELECT * FROM core.referral
WHERE to_agency = sqlc.arg(agency) AND action_due IS NOT NULL
  AND (action_due, id) > (sqlc.arg(after_due)::timestamptz, sqlc.arg(after_id)::uuid)
ORDER BY action_due, id
LIMIT sqlc.arg(max_rows);

-- name: ActionOrg :many
-- ActionAll for one organization of this node.
SELECT * FROM core.referral
WHERE to_org = sqlc.arg(org) AND to_agency = sqlc.arg(agency) AND action_due IS NOT NULL
  AND (action_due, id) > (sqlc.arg(after_due)::timestamptz, sqlc.arg(after_id)::uuid)
ORDER BY action_due, id
LIMIT sqlc.arg(max_rows);

-- name: ActionMine :many
-- ActionAll for the referrals assigned to one user.
SELECT * FROM core.referral
WHERE assigned_to = sqlc.arg(username) AND assigned_to <> '' AND to_agency = sqlc.arg(agency) AND action_due IS NOT NULL
  AND (action_due, id) > (sqlc.arg(after_due)::timestamptz, sqlc.arg(after_id)::uuid)
ORDER BY action_due, id
LIMIT sqlc.arg(max_rows);

-- name: ActionNewCount :one
-- How many referrals to act on nobody of the receiving organization has
-- opened yet (of one organization, or all for a NULL org), counted up to
-- 100: the count in the tab's title.
SELECT count(*) FROM (
  SELECT 1 FROM core.referral
  WHERE to_agency = sqlc.arg(agency) AND action_due IS NOT NULL AND opened_at IS NULL
    AND (sqlc.narg(org)::text IS NULL OR to_org = sqlc.narg(org))
  LIMIT 100) AS n;

-- name: ReferralAssign :execrows
-- Assigns a referral this node received to one of its users ('' for
-- none).
UPDATE core.referral SET assigned_to = sqlc.arg(username)
WHERE id = sqlc.arg(id) AND to_agency = sqlc.arg(agency);

-- name: ReferralOpened :exec
-- Someone of the receiving organization opened the referral: it is no
-- longer new.
UPDATE core.referral SET opened_at = now() WHERE id = $1 AND opened_at IS NULL;

-- name: ReferralsByCaseNumber :many
-- The referrals of the cases with a number (one case, unless two ids
-- share their last 48 bits).
SELECT * FROM core.referral WHERE core.case_number(case_id) = sqlc.arg(number)::bigint ORDER BY case_id, created_at, id;

-- name: ReferralsByPersonKey :many
-- The newest referrals about a person, for finding their cases.
SELECT * FROM core.referral WHERE person_key = $1 AND person_key <> '' ORDER BY created_at DESC LIMIT 500;

-- name: SLATimersOfCase :many
-- The deadlines of the referrals of a case this node sent.
SELECT t.* FROM core.sla_timer t JOIN core.referral r ON r.id = t.referral_id
WHERE r.case_id = $1 AND t.cleared_at IS NULL;

-- name: ColleaguesOf :many
-- The users a referral to organization org may be assigned to: its
-- caseworkers and supervisors, and the node's.
SELECT username, display_name FROM core.web_user
WHERE role <> 'auditor' AND disabled_at IS NULL AND (org = sqlc.arg(org) OR org = '')
ORDER BY display_name, username;
