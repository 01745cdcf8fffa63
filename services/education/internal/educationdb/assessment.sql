-- name: AssessmentInsert :exec
INSERT INTO education.assessment (id, referral_id, case_id, conclusion, needs_support) VALUES ($1, $2, $3, $4, $5);

-- name: LearningPlanInsert :exec
INSERT INTO education.learning_plan (id, assessment_id, referral_id, case_id, programme, goals, starts_on, review_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: AssessmentErase :exec
-- What the assessments and learning plans of these referrals say goes.
UPDATE education.assessment SET conclusion = '' WHERE referral_id = ANY(sqlc.arg(ids)::uuid[]);

-- name: LearningPlanErase :exec
UPDATE education.learning_plan SET programme = '', goals = '' WHERE referral_id = ANY(sqlc.arg(ids)::uuid[]);
