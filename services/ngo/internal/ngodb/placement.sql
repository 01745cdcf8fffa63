-- name: CapacitySet :exec
-- The configured beds of a service; places taken stay as they are.
INSERT INTO ngo.capacity (service, beds) VALUES ($1, $2)
ON CONFLICT (service) DO UPDATE SET beds = excluded.beds;

-- name: CapacityList :many
SELECT * FROM ngo.capacity ORDER BY service;

-- name: CapacityGet :one
SELECT * FROM ngo.capacity WHERE service = $1;

-- name: CapacityTake :one
-- Takes a place, if one is free; no row means none is.
UPDATE ngo.capacity SET used = used + 1 WHERE service = $1 AND used < beds RETURNING *;

-- name: CapacityFree :exec
UPDATE ngo.capacity SET used = greatest(used - 1, 0) WHERE service = $1;

-- name: PlacementInsert :exec
INSERT INTO ngo.placement (id, referral_id, case_id, service, bed, address, starts_on, ends_on)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: PlacementEnd :one
-- Ends the stay of a referral's placement, if one is running.
UPDATE ngo.placement SET ended_at = now() WHERE referral_id = $1 AND ended_at IS NULL RETURNING service;
