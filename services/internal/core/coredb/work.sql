-- name: ReferralSetWork :exec
-- Adds the work records an event carried to those the referral has.
UPDATE core.referral SET work = coalesce(work, '{}'::jsonb) || sqlc.arg(work)::jsonb WHERE id = $1;
