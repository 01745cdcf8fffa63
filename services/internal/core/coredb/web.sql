-- Queries of the caseworker UI (core/web, through core/app).

-- name: WebInbox :many
-- Incoming referrals, newest first, narrowed by the inbox filters; a NULL
-- filter does not narrow. before_at/before_id page backwards.
SELECT * FROM core.referral
WHERE to_agency = sqlc.arg(agency)
  AND (sqlc.narg(org)::text IS NULL OR to_org = sqlc.narg(org))
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
SELECT * FROM core.referral
WHERE from_agency = sqlc.arg(agency)
  AND (sqlc.narg(org)::text IS NULL OR from_org = sqlc.narg(org))
  AND (sqlc.narg(status)::text IS NULL OR status = sqlc.narg(status))
  AND (sqlc.narg(service)::text IS NULL OR service = sqlc.narg(service))
  AND (NOT sqlc.arg(overdue_only)::boolean OR overdue_at IS NOT NULL)
  AND (sqlc.narg(from_at)::timestamptz IS NULL OR created_at >= sqlc.narg(from_at))
  AND (sqlc.narg(to_at)::timestamptz IS NULL OR created_at < sqlc.narg(to_at))
  AND (sqlc.narg(before_at)::timestamptz IS NULL OR (created_at, id) < (sqlc.narg(before_at), sqlc.arg(before_id)::uuid))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: WebHistoryByReferral :many
SELECT * FROM core.referral_history WHERE referral_id = $1 ORDER BY id;

-- name: WebUserUpsert :exec
-- Creates a user or changes its name, role, organization and password; a
-- language the user chose is kept.
INSERT INTO core.web_user (username, display_name, role, password_hash, org)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (username) DO UPDATE
SET display_name = excluded.display_name, role = excluded.role, password_hash = excluded.password_hash, org = excluded.org;

-- name: WebUserGet :one
SELECT * FROM core.web_user WHERE username = $1;

-- name: WebUserSetLang :exec
UPDATE core.web_user SET lang = $2 WHERE username = $1;

-- name: WebSessionInsert :exec
INSERT INTO core.web_session (token_hash, username, role, expires_at) VALUES ($1, $2, $3, $4);

-- name: WebSessionGet :one
-- A live session with its user; a disabled user's sessions are dead.
SELECT s.username, s.role, s.expires_at, u.display_name, u.lang, u.org
FROM core.web_session s JOIN core.web_user u ON u.username = s.username
WHERE s.token_hash = $1 AND s.expires_at > now() AND u.disabled_at IS NULL;

-- name: WebSessionDelete :exec
DELETE FROM core.web_session WHERE token_hash = $1;

-- name: WebSessionDeleteExpired :exec
DELETE FROM core.web_session WHERE expires_at <= now();
