-- Queries of the caseworker UI (services/internal/web).

-- name: WebInbox :many
-- Incoming referrals, newest first, narrowed by the inbox filters; a NULL
-- filter does not narrow. before_at/before_id page backwards.
SELECT * FROM referral
WHERE to_agency = sqlc.arg(agency)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(service)::text IS NULL OR service = sqlc.narg(service))
  AND (NOT sqlc.arg(overdue_only)::boolean OR overdue_at IS NOT NULL)
  AND (sqlc.narg(from_at)::timestamptz IS NULL OR created_at >= sqlc.narg(from_at))
  AND (sqlc.narg(to_at)::timestamptz IS NULL OR created_at < sqlc.narg(to_at))
  AND (sqlc.narg(before_at)::timestamptz IS NULL OR (created_at, id) < (sqlc.narg(before_at), sqlc.arg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: WebSent :many
-- Outgoing referrals, as WebInbox.
SELECT * FROM referral
WHERE from_agency = sqlc.arg(agency)
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(service)::text IS NULL OR service = sqlc.narg(service))
  AND (NOT sqlc.arg(overdue_only)::boolean OR overdue_at IS NOT NULL)
  AND (sqlc.narg(from_at)::timestamptz IS NULL OR created_at >= sqlc.narg(from_at))
  AND (sqlc.narg(to_at)::timestamptz IS NULL OR created_at < sqlc.narg(to_at))
  AND (sqlc.narg(before_at)::timestamptz IS NULL OR (created_at, id) < (sqlc.narg(before_at), sqlc.arg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: WebInboxCounts :many
-- How many incoming referrals are in each status, and how many of them are
-- overdue.
SELECT status, count(*) AS n, count(*) FILTER (WHERE overdue_at IS NOT NULL) AS overdue
FROM referral WHERE to_agency = sqlc.arg(agency)
GROUP BY status;

-- name: WebSentCounts :many
SELECT status, count(*) AS n, count(*) FILTER (WHERE overdue_at IS NOT NULL) AS overdue
FROM referral WHERE from_agency = sqlc.arg(agency)
GROUP BY status;

-- name: WebHistoryByReferral :many
SELECT * FROM referral_history WHERE referral_id = $1 ORDER BY id;

-- name: WebChangeMark :one
-- Changes whenever a referral here may have changed (see 00013_web.sql).
SELECT (SELECT coalesce(max(seq), 0) FROM outbox)::bigint AS outbox_seq,
       (SELECT coalesce(max(received_at), 'epoch') FROM inbox)::timestamptz AS inbox_at;

-- name: WebUserUpsert :exec
-- Creates a user or changes its name, role and password; a language the
-- user chose is kept.
INSERT INTO web_user (username, display_name, role, password_hash)
VALUES ($1, $2, $3, $4)
ON CONFLICT (username) DO UPDATE
SET display_name = excluded.display_name, role = excluded.role, password_hash = excluded.password_hash;

-- name: WebUserGet :one
SELECT * FROM web_user WHERE username = $1;

-- name: WebUserSetLang :exec
UPDATE web_user SET lang = $2 WHERE username = $1;

-- name: WebSessionInsert :exec
INSERT INTO web_session (token_hash, username, role, expires_at) VALUES ($1, $2, $3, $4);

-- name: WebSessionGet :one
-- A live session with its user.
SELECT s.username, s.role, s.expires_at, u.display_name, u.lang
FROM web_session s JOIN web_user u ON u.username = s.username
WHERE s.token_hash = $1 AND s.expires_at > now();

-- name: WebSessionDelete :exec
DELETE FROM web_session WHERE token_hash = $1;

-- name: WebSessionDeleteExpired :exec
DELETE FROM web_session WHERE expires_at <= now();

-- name: ReferralSeedIncoming :exec
-- For the inbox bench only: n received referrals from the other agencies,
-- spread over statuses, services and the last year, one in fifty overdue.
INSERT INTO referral (id, case_id, from_agency, to_agency, service, note, status, seq_in, created_at, updated_at, received_at, overdue_at)
SELECT gen_random_uuid(), gen_random_uuid(),
       (sqlc.arg(from_agencies)::text[])[1 + i % cardinality(sqlc.arg(from_agencies)::text[])],
       sqlc.arg(agency)::text,
       (ARRAY['family_support', 'crisis_shelter', 'psychological_help', 'disability_support', 'benefits_and_housing'])[1 + i % 5],
       'Seeded referral ' || i,
       (ARRAY['received', 'accepted', 'in_progress', 'on_hold', 'completed', 'declined', 'completed', 'completed'])[1 + i % 8],
       1,
       now() - (i * interval '5 minutes'), now() - (i * interval '5 minutes'), now() - (i * interval '5 minutes'),
       CASE WHEN i % 50 = 0 THEN now() END
FROM generate_series(1, sqlc.arg(n)::integer) AS i;

-- name: ReferralAnalyze :exec
-- For the inbox bench: fresh planner statistics after seeding.
ANALYZE referral;
