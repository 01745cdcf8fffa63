-- name: ReferralInsert :exec
INSERT INTO referral (id, case_id, from_agency, to_agency, service, note, status, seq_out)
VALUES ($1, $2, $3, $4, $5, $6, 'requested', 1);

-- name: ReferralReceive :exec
-- Records referrals that arrived from other agencies; a referral seen before
-- is left as it is.
INSERT INTO referral (id, case_id, from_agency, to_agency, service, note, status, seq_in)
SELECT u.id, u.case_id, u.from_agency, u.to_agency, u.service, u.note, 'received', 1
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(case_ids)::uuid[]) AS case_id, unnest(sqlc.arg(from_agencies)::text[]) AS from_agency, unnest(sqlc.arg(to_agencies)::text[]) AS to_agency, unnest(sqlc.arg(services)::text[]) AS service, unnest(sqlc.arg(notes)::text[]) AS note) AS u
ON CONFLICT (id) DO NOTHING;

-- name: ReferralMarkReceived :exec
UPDATE referral
SET status = 'received', updated_at = now()
WHERE id = ANY(sqlc.arg(ids)::uuid[]) AND status = 'requested';

-- name: ReferralMarkUndelivered :exec
UPDATE referral
SET delivery_error = u.reason, updated_at = now()
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(reasons)::text[]) AS reason) AS u
WHERE referral.id = u.id;

-- name: ReferralGet :one
SELECT * FROM referral WHERE id = $1;

-- name: ReferralListIncoming :many
SELECT * FROM referral
WHERE to_agency = sqlc.arg(agency)
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: ReferralListOutgoing :many
SELECT * FROM referral
WHERE from_agency = sqlc.arg(agency)
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: ReferralCountByStatus :many
SELECT status, count(*) AS n FROM referral
WHERE from_agency = sqlc.arg(agency)
GROUP BY status;
