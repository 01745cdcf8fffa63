-- name: OutboxInsert :exec
INSERT INTO outbox (event_id, event_type, subject, msg_id, traceparent, payload, wants_receipt)
SELECT * FROM (SELECT
    unnest(sqlc.arg(event_ids)::uuid[]) AS event_ids, unnest(sqlc.arg(event_types)::text[]) AS event_types,
    unnest(sqlc.arg(subjects)::text[]) AS subjects, unnest(sqlc.arg(msg_ids)::text[]) AS msg_ids,
    unnest(sqlc.arg(traceparents)::text[]) AS traceparents, unnest(sqlc.arg(payloads)::bytea[]) AS payloads,
    unnest(sqlc.arg(wants_receipts)::boolean[]) AS wants_receipts) AS u;

-- name: OutboxPending :many
-- Unpublished events in the order they were written. A row of a
-- transaction that commits late shows up in a later round: nothing keeps a
-- cursor past it. Events of one referral come from transactions that
-- follow each other, so they are in order here.
SELECT seq, subject, msg_id, traceparent, payload, republished
FROM outbox
WHERE published_at IS NULL
ORDER BY seq
LIMIT $1;

-- name: OutboxMarkPublished :exec
-- ANY() keeps this an index scan however the planner guesses the batch size.
UPDATE outbox
SET published_at = now(),
    stream_seq = (sqlc.arg(stream_seqs)::bigint[])[array_position(sqlc.arg(seqs)::bigint[], seq)]
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]);

-- name: OutboxResendUnreceipted :execrows
-- Queues again the events whose receipt did not come back in time.
UPDATE outbox
SET published_at = NULL, republished = republished + 1
WHERE wants_receipt AND receipted_at IS NULL AND published_at < $1;

-- name: OutboxMarkReceipted :many
-- Records receipts; a receipt counts only from the agency the event was
-- addressed to (the third token of its subject).
UPDATE outbox
SET receipted_at = now(),
    receipt_outcome = (sqlc.arg(outcomes)::text[])[array_position(sqlc.arg(event_ids)::uuid[], event_id)],
    receipt_reason = (sqlc.arg(reasons)::text[])[array_position(sqlc.arg(event_ids)::uuid[], event_id)]
WHERE event_id = ANY(sqlc.arg(event_ids)::uuid[]) AND receipted_at IS NULL
  AND split_part(subject, '.', 3) = (sqlc.arg(froms)::text[])[array_position(sqlc.arg(event_ids)::uuid[], event_id)]
RETURNING event_id, event_type, subject;

-- name: OutboxNotify :exec
SELECT pg_notify('refbus_outbox', '');

-- name: OutboxListen :exec
LISTEN refbus_outbox;

-- name: RelayTryLock :one
SELECT pg_try_advisory_lock(sqlc.arg(key)::bigint);
