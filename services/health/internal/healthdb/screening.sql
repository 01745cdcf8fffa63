-- name: ScreeningInsert :exec
INSERT INTO health.screening (id, referral_id, case_id, kind, result, findings) VALUES ($1, $2, $3, $4, $5, $6);

-- name: ScreeningErase :exec
-- What the screenings of these referrals found goes; that one was made stays.
UPDATE health.screening SET findings = '' WHERE referral_id = ANY(sqlc.arg(ids)::uuid[]);
