-- name: ListCounts :many
-- How many referrals of this node's side ('in' or 'out') of one
-- organization (of any, for a NULL org) are in each status and service,
-- and how many of them are overdue: the folded counts plus the changes
-- not folded yet.
SELECT status, service, sum(n)::bigint AS n, sum(overdue)::bigint AS overdue
FROM (SELECT f.status, f.service, f.n, f.overdue FROM core.referral_count f
      WHERE f.agency = sqlc.arg(agency) AND f.side = sqlc.arg(side) AND (sqlc.narg(org)::text IS NULL OR f.org = sqlc.narg(org))
      UNION ALL
      SELECT d.status, d.service, d.n, d.overdue FROM core.referral_count_delta d
      WHERE d.agency = sqlc.arg(agency) AND d.side = sqlc.arg(side) AND (sqlc.narg(org)::text IS NULL OR d.org = sqlc.narg(org))) AS c
GROUP BY status, service
HAVING sum(n) <> 0
ORDER BY status, service;

-- name: ListCountsFold :execrows
-- Folds the changes written since the last fold into the counts. Rows
-- written meanwhile stay for the next: the statement takes the rows it
-- deletes, no more; a concurrent fold waits and finds them gone.
WITH d AS (DELETE FROM core.referral_count_delta RETURNING *)
INSERT INTO core.referral_count AS c (agency, side, org, status, service, n, overdue)
SELECT agency, side, org, status, service, sum(n), sum(overdue) FROM d
GROUP BY agency, side, org, status, service
ORDER BY agency, side, org, status, service
ON CONFLICT (agency, side, org, status, service) DO UPDATE SET n = c.n + excluded.n, overdue = c.overdue + excluded.overdue;
