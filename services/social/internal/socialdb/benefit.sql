-- name: BenefitDecisionInsert :exec
INSERT INTO social.benefit_decision (id, referral_id, case_id, benefit, decision, monthly_kzt, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: BenefitDecisionErase :exec
-- Why these referrals' decisions were made goes; the decisions stay.
UPDATE social.benefit_decision SET reason = '' WHERE referral_id = ANY(sqlc.arg(ids)::uuid[]);
