-- name: AgencyKeyCreate :exec
-- Keeps the first key made; a service starting at the same time loses.
INSERT INTO core.agency_key (agency, private_key) VALUES ($1, $2) ON CONFLICT (agency) DO NOTHING;

-- name: AgencyKeyGet :one
SELECT private_key FROM core.agency_key WHERE agency = $1;

-- name: EpochKeyCurrent :one
-- The sealing key of the day: the newest not retired.
SELECT * FROM core.epoch_key WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1;

-- name: EpochKeyCreate :exec
-- A new key of the day; every other is retired.
WITH retired AS (
    UPDATE core.epoch_key SET retired_at = now() WHERE retired_at IS NULL
)
INSERT INTO core.epoch_key (id, private_key, public_key) VALUES ($1, $2, $3);

-- name: EpochKeyGet :one
SELECT * FROM core.epoch_key WHERE id = $1;

-- name: EpochKeyRetiredBefore :many
-- Keys retired before a time and not yet destroyed.
SELECT id FROM core.epoch_key WHERE retired_at < sqlc.arg(before)::timestamptz AND destroyed_at IS NULL;

-- name: EpochKeyDestroy :exec
UPDATE core.epoch_key SET private_key = NULL, destroyed_at = now() WHERE id = ANY(sqlc.arg(ids)::text[]);
