-- name: InboxSeen :many
-- The events of a batch that were already received. Joining the pairs
-- keeps this one primary-key lookup per event, however large the inbox
-- grows (ANY() on each column would read every event of those sources).
SELECT i.source, i.event_id, i.outcome, i.reason
FROM (SELECT unnest(sqlc.arg(sources)::text[]) AS source, unnest(sqlc.arg(event_ids)::text[]) AS event_id) AS u
JOIN inbox i ON i.source = u.source AND i.event_id = u.event_id;

-- name: InboxInsert :exec
INSERT INTO inbox (source, event_id, event_type, subject, stream_seq, outcome, reason, payload)
SELECT * FROM (SELECT
    unnest(sqlc.arg(sources)::text[]) AS sources, unnest(sqlc.arg(event_ids)::text[]) AS event_ids,
    unnest(sqlc.arg(event_types)::text[]) AS event_types, unnest(sqlc.arg(subjects)::text[]) AS subjects,
    unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seqs, unnest(sqlc.arg(outcomes)::text[]) AS outcomes,
    unnest(sqlc.arg(reasons)::text[]) AS reasons, unnest(sqlc.arg(payloads)::bytea[]) AS payloads) AS u
-- A receipt, rejected again when delivered again, is already there.
ON CONFLICT (source, event_id) DO NOTHING;

-- name: DeadLetterInsert :exec
INSERT INTO dead_letter (stream_seq, subject, deliveries)
VALUES ($1, $2, $3)
ON CONFLICT (stream_seq) DO NOTHING;

-- name: DeadLetterPending :many
SELECT stream_seq, subject, deliveries, noted_at FROM dead_letter
WHERE redriven_at IS NULL
ORDER BY stream_seq;

-- name: DeadLetterMarkRedriven :exec
UPDATE dead_letter SET redriven_at = now() WHERE stream_seq = $1;
