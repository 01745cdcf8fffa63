-- name: SLATimerSet :exec
INSERT INTO core.sla_timer (referral_id, kind, due_at)
SELECT * FROM (SELECT unnest(sqlc.arg(referral_ids)::uuid[]) AS referral_id, unnest(sqlc.arg(kinds)::text[]) AS kind,
                      unnest(sqlc.arg(due_ats)::timestamptz[]) AS due_at) AS u
ON CONFLICT (referral_id, kind) DO NOTHING;

-- name: SLATimerClear :exec
UPDATE core.sla_timer SET cleared_at = now()
WHERE referral_id = $1 AND kind = ANY(sqlc.arg(kinds)::text[]) AND cleared_at IS NULL;

-- name: SLATimersDue :many
-- Due timers, locked so that two services on one store never fire the same.
SELECT t.referral_id, t.kind, t.due_at, r.case_id, r.from_agency, r.to_agency, r.from_org, r.to_org, r.service, r.traceparent
FROM core.sla_timer t
JOIN core.referral r ON r.id = t.referral_id
WHERE t.fired_at IS NULL AND t.cleared_at IS NULL AND t.due_at <= sqlc.arg(now)
ORDER BY t.due_at
LIMIT 100
FOR UPDATE OF t SKIP LOCKED;

-- name: SLATimerFired :exec
UPDATE core.sla_timer SET fired_at = sqlc.arg(now) WHERE referral_id = $1 AND kind = $2;

-- name: ReferralMarkOverdue :exec
UPDATE core.referral SET overdue_at = coalesce(overdue_at, sqlc.arg(at)) WHERE id = $1;

-- name: EscalationInsert :exec
INSERT INTO core.escalation (referral_id, kind, case_id, from_agency, to_agency, from_org, to_org, service, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (referral_id, kind) DO NOTHING;

-- name: EscalationList :many
SELECT * FROM core.escalation ORDER BY due_at DESC LIMIT $1;
