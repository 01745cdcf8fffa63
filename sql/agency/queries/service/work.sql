-- name: CapacitySet :exec
-- The configured beds of a service; places taken stay as they are.
INSERT INTO capacity (service, beds) VALUES ($1, $2)
ON CONFLICT (service) DO UPDATE SET beds = excluded.beds;

-- name: CapacityList :many
SELECT * FROM capacity ORDER BY service;

-- name: CapacityGet :one
SELECT * FROM capacity WHERE service = $1;

-- name: CapacityTake :one
-- Takes a place, if one is free; no row means none is.
UPDATE capacity SET used = used + 1 WHERE service = $1 AND used < beds RETURNING *;

-- name: CapacityFree :exec
UPDATE capacity SET used = greatest(used - 1, 0) WHERE service = $1;

-- name: PlacementInsert :exec
INSERT INTO placement (id, referral_id, case_id, service, bed, address, starts_on, ends_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: PlacementEnd :one
-- Ends the stay of a referral's placement, if one is running.
UPDATE placement SET ended_at = now() WHERE referral_id = $1 AND ended_at IS NULL RETURNING service;

-- name: ScreeningInsert :exec
INSERT INTO screening (id, referral_id, case_id, kind, result, findings) VALUES ($1, $2, $3, $4, $5, $6);

-- name: AssessmentInsert :exec
INSERT INTO assessment (id, referral_id, case_id, conclusion, needs_support) VALUES ($1, $2, $3, $4, $5);

-- name: LearningPlanInsert :exec
INSERT INTO learning_plan (id, assessment_id, referral_id, case_id, programme, goals, starts_on, review_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: BenefitDecisionInsert :exec
INSERT INTO benefit_decision (id, referral_id, case_id, benefit, decision, monthly_kzt, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: ReferralSetWork :exec
-- Adds the work records an event carried to those the referral has.
UPDATE referral SET work = coalesce(work, '{}'::jsonb) || sqlc.arg(work)::jsonb WHERE id = $1;
