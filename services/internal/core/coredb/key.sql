-- name: AgencyKeyCreate :exec
-- Keeps the first key made; a service starting at the same time loses.
INSERT INTO core.agency_key (agency, private_key) VALUES ($1, $2) ON CONFLICT (agency) DO NOTHING;

-- name: AgencyKeyGet :one
SELECT private_key FROM core.agency_key WHERE agency = $1;
