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
SELECT seq, subject, msg_id, traceparent, payload, republished, chain_pos
FROM outbox
WHERE published_at IS NULL
ORDER BY seq
LIMIT $1;

-- name: OutboxChainHead :one
-- The last event the relay signed: the head of the agency's hash chain.
SELECT chain_pos::bigint AS chain_pos, chain_hash::text AS chain_hash
FROM outbox
WHERE chain_pos IS NOT NULL
ORDER BY chain_pos DESC
LIMIT 1;

-- name: OutboxSign :exec
-- Stores signed events before they are published (schemas/SIGNING.md).
UPDATE outbox
SET payload = (sqlc.arg(payloads)::bytea[])[array_position(sqlc.arg(seqs)::bigint[], seq)],
    chain_pos = (sqlc.arg(chain_poss)::bigint[])[array_position(sqlc.arg(seqs)::bigint[], seq)],
    chain_hash = (sqlc.arg(chain_hashes)::text[])[array_position(sqlc.arg(seqs)::bigint[], seq)]
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]);

-- name: OutboxMarkPublished :exec
-- Joining the pairs makes this one primary-key lookup per event.
UPDATE outbox o
SET published_at = now(), stream_seq = u.stream_seq
FROM (SELECT unnest(sqlc.arg(seqs)::bigint[]) AS seq, unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seq) AS u
WHERE o.seq = u.seq;

-- name: OutboxResendUnreceipted :execrows
-- Queues again the events whose receipt did not come back in time.
UPDATE outbox
SET published_at = NULL, republished = republished + 1
WHERE wants_receipt AND receipted_at IS NULL AND published_at < $1;

-- name: OutboxMarkReceipted :many
-- Records receipts; a receipt counts only from the agency the event was
-- addressed to (the third token of its subject).
UPDATE outbox o
SET receipted_at = now(), receipt_outcome = u.outcome, receipt_reason = u.reason
FROM (SELECT unnest(sqlc.arg(event_ids)::uuid[]) AS event_id, unnest(sqlc.arg(froms)::text[]) AS from_agency,
             unnest(sqlc.arg(outcomes)::text[]) AS outcome, unnest(sqlc.arg(reasons)::text[]) AS reason) AS u
WHERE o.event_id = u.event_id AND o.receipted_at IS NULL AND split_part(o.subject, '.', 3) = u.from_agency
RETURNING o.event_id, o.event_type, o.subject;

-- name: OutboxNotify :exec
SELECT pg_notify('refbus_outbox', '');

-- name: OutboxListen :exec
LISTEN refbus_outbox;

-- name: RelayTryLock :one
SELECT pg_try_advisory_lock(sqlc.arg(key)::bigint);
