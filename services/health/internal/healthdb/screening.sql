-- name: ScreeningInsert :exec
INSERT INTO health.screening (id, referral_id, case_id, kind, result, findings) VALUES ($1, $2, $3, $4, $5, $6);
