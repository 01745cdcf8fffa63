-- name: InboxSeen :many
-- The events of a batch that were already received. Joining the pairs
-- keeps this one primary-key lookup per event, however large the inbox
-- grows (ANY() on each column would read every event of those sources).
SELECT i.source, i.event_id, i.outcome, i.reason
FROM (SELECT unnest(sqlc.arg(sources)::text[]) AS source, unnest(sqlc.arg(event_ids)::text[]) AS event_id) AS u
JOIN bus.inbox i ON i.source = u.source AND i.event_id = u.event_id;

-- name: InboxInsert :exec
INSERT INTO bus.inbox (source, event_id, event_type, subject, stream_seq, outcome, reason, payload)
SELECT * FROM (SELECT
    unnest(sqlc.arg(sources)::text[]) AS sources, unnest(sqlc.arg(event_ids)::text[]) AS event_ids,
    unnest(sqlc.arg(event_types)::text[]) AS event_types, unnest(sqlc.arg(subjects)::text[]) AS subjects,
    unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seqs, unnest(sqlc.arg(outcomes)::text[]) AS outcomes,
    unnest(sqlc.arg(reasons)::text[]) AS reasons, unnest(sqlc.arg(payloads)::bytea[]) AS payloads) AS u
-- A receipt, rejected again when delivered again, is already there.
ON CONFLICT (source, event_id) DO NOTHING;

-- name: InboxListReceived :many
-- Every event of one type this node received, applied or rejected, a page
-- at a time in key order (after the source and event id of the previous
-- page, empty strings for the first).
SELECT source, event_id, event_type, subject, stream_seq, outcome, received_at
FROM bus.inbox
WHERE event_type = sqlc.arg(event_type)
  AND (source, event_id) > (sqlc.arg(after_source)::text, sqlc.arg(after_event_id)::text)
ORDER BY source, event_id
LIMIT sqlc.arg(max_rows);

-- name: InboxRejections :many
-- The newest rejected events.
SELECT source, event_id, event_type, subject, stream_seq, reason, received_at
FROM bus.inbox WHERE outcome = 'rejected'
ORDER BY received_at DESC
LIMIT sqlc.arg(max_rows);

-- name: InboxLastReceived :one
-- When the newest event was received, the epoch when none was.
SELECT coalesce(max(received_at), 'epoch')::timestamptz AS received_at FROM bus.inbox;

-- name: DeadLetterInsert :exec
-- Recorded twice (from the last delivery and from the advisory), a dead
-- letter keeps the first record that has the message.
INSERT INTO bus.dead_letter AS d (stream_seq, subject, deliveries, header, payload, reason)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (stream_seq) DO UPDATE
SET subject = excluded.subject, header = excluded.header, payload = excluded.payload, reason = excluded.reason
WHERE d.payload IS NULL AND excluded.payload IS NOT NULL;

-- name: DeadLetterPending :many
SELECT stream_seq, subject, deliveries, noted_at, header, payload, reason FROM bus.dead_letter
WHERE redriven_at IS NULL
ORDER BY stream_seq;

-- name: DeadLetterMarkRedriven :exec
UPDATE bus.dead_letter SET redriven_at = now() WHERE stream_seq = $1;
