-- Queries of the node's user management and its case access log (core/app
-- users.go and access.go).

-- name: WebUserList :many
-- The node's users, of one organization or (NULL) all, by name.
SELECT * FROM core.web_user
WHERE sqlc.narg(org)::text IS NULL OR org = sqlc.narg(org)
ORDER BY username;

-- name: WebUserInsert :exec
INSERT INTO core.web_user (username, display_name, role, password_hash, org)
VALUES ($1, $2, $3, $4, $5);

-- name: WebUserGetForUpdate :one
SELECT * FROM core.web_user WHERE username = $1 FOR UPDATE;

-- name: WebUserSetDisabled :exec
-- Disables (a time) or enables (NULL) a user.
UPDATE core.web_user SET disabled_at = sqlc.narg(disabled_at) WHERE username = sqlc.arg(username);

-- name: WebUserSetPassword :exec
UPDATE core.web_user SET password_hash = $2 WHERE username = $1;

-- name: WebUserSetRole :exec
UPDATE core.web_user SET role = $2, org = $3 WHERE username = $1;

-- name: WebUserSignedIn :exec
UPDATE core.web_user SET last_sign_in_at = now() WHERE username = $1;

-- name: WebUserDisabled :one
-- Whether a user is disabled; no row for a subject that is no user.
SELECT (disabled_at IS NOT NULL)::boolean AS disabled FROM core.web_user WHERE username = $1;

-- name: WebSessionDeleteByUser :exec
DELETE FROM core.web_session WHERE username = $1;

-- name: CaseAccessInsert :exec
INSERT INTO core.case_access (case_id, referral_id, username, org, via) VALUES ($1, $2, $3, $4, $5);

-- name: CaseAccessList :many
-- Who opened which case, newest first, narrowed by case, user and the
-- viewer's organization (NULL: no narrowing); before_at/before_id page
-- backwards.
SELECT * FROM core.case_access
WHERE (sqlc.narg(case_id)::uuid IS NULL OR case_id = sqlc.narg(case_id))
  AND (sqlc.narg(username)::text IS NULL OR username = sqlc.narg(username))
  AND (sqlc.narg(org)::text IS NULL OR org = sqlc.narg(org))
  AND (sqlc.narg(before_at)::timestamptz IS NULL OR (at, id) < (sqlc.narg(before_at), sqlc.arg(before_id)::bigint))
ORDER BY at DESC, id DESC
LIMIT sqlc.arg(max_rows);
