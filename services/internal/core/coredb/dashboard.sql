-- Queries of the supervisors' dashboard (core/web, through core/app).
-- Each reads only the referrals created in the period, through the
-- indexes of the inbox and the sent list (referral_incoming(_org),
-- referral_outgoing(_org)); a NULL org is every organization of the node.

-- name: DashboardCounts :many
-- The period's referrals, incoming ('in': org is ours, the receiver) and
-- outgoing ('out': org is ours, the sender), counted by organization,
-- service, week (its Monday in time zone tz), status and reason code,
-- with how many of each are marked overdue.
SELECT 'in'::text AS direction, i.to_org AS org, i.service,
       date_trunc('week', i.created_at AT TIME ZONE sqlc.arg(tz)::text)::date AS week,
       i.status, i.reason_code, count(*) AS n, count(*) FILTER (WHERE i.overdue_at IS NOT NULL) AS overdue
FROM core.referral i
WHERE i.to_agency = sqlc.arg(agency) AND (sqlc.narg(org)::text IS NULL OR i.to_org = sqlc.narg(org))
  AND i.created_at >= sqlc.arg(from_at) AND i.created_at < sqlc.arg(to_at)
GROUP BY 2, 3, 4, 5, 6
UNION ALL
SELECT 'out'::text, o.from_org, o.service,
       date_trunc('week', o.created_at AT TIME ZONE sqlc.arg(tz)::text)::date,
       o.status, o.reason_code, count(*), count(*) FILTER (WHERE o.overdue_at IS NOT NULL)
FROM core.referral o
WHERE o.from_agency = sqlc.arg(agency) AND (sqlc.narg(org)::text IS NULL OR o.from_org = sqlc.narg(org))
  AND o.created_at >= sqlc.arg(from_at) AND o.created_at < sqlc.arg(to_at)
GROUP BY 2, 3, 4, 5, 6;

-- name: DashboardTimes :many
-- Median and 90th percentile of the time from receipt (received_at, or
-- created_at until the receipt is known) to the first accept move and to
-- the complete move, in seconds, by direction and service, over the
-- period's referrals that were accepted. Each referral's moves come from
-- its own rows of referral_history (index referral_history_referral), so
-- the work grows with the period, not with the store. A percentile with no
-- referral behind it is 0: read it with its count.
WITH moved AS (
    SELECT 'in'::text AS direction, i.id, i.service, coalesce(i.received_at, i.created_at) AS start_at
    FROM core.referral i
    WHERE i.to_agency = sqlc.arg(agency) AND (sqlc.narg(org)::text IS NULL OR i.to_org = sqlc.narg(org))
      AND i.created_at >= sqlc.arg(from_at) AND i.created_at < sqlc.arg(to_at)
      AND i.status NOT IN ('requested', 'received', 'declined')
    UNION ALL
    SELECT 'out'::text, o.id, o.service, coalesce(o.received_at, o.created_at)
    FROM core.referral o
    WHERE o.from_agency = sqlc.arg(agency) AND (sqlc.narg(org)::text IS NULL OR o.from_org = sqlc.narg(org))
      AND o.created_at >= sqlc.arg(from_at) AND o.created_at < sqlc.arg(to_at)
      AND o.status NOT IN ('requested', 'received', 'declined')
), timed AS (
    SELECT m.direction, m.service,
           extract(epoch FROM h.accepted_at - m.start_at)::float8 AS to_accept,
           extract(epoch FROM h.completed_at - m.start_at)::float8 AS to_complete
    FROM moved m
    CROSS JOIN LATERAL (
        SELECT min(at) FILTER (WHERE move = 'accept') AS accepted_at,
               min(at) FILTER (WHERE move = 'complete') AS completed_at
        FROM core.referral_history WHERE referral_id = m.id
    ) h
)
SELECT direction, service,
       count(to_accept) AS accepted,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_accept), 0)::float8 AS accept_p50,
       coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY to_accept), 0)::float8 AS accept_p90,
       count(to_complete) AS completed,
       coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_complete), 0)::float8 AS complete_p50,
       coalesce(percentile_cont(0.9) WITHIN GROUP (ORDER BY to_complete), 0)::float8 AS complete_p90
FROM timed
GROUP BY direction, service
ORDER BY direction, service;
