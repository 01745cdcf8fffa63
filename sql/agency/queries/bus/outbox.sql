-- name: OutboxInsert :exec
-- Writes the events, and lists those that want a receipt as awaiting it.
WITH written AS (
    INSERT INTO outbox (event_id, event_type, subject, msg_id, traceparent, payload, wants_receipt)
    SELECT * FROM (SELECT
        unnest(sqlc.arg(event_ids)::uuid[]) AS event_ids, unnest(sqlc.arg(event_types)::text[]) AS event_types,
        unnest(sqlc.arg(subjects)::text[]) AS subjects, unnest(sqlc.arg(msg_ids)::text[]) AS msg_ids,
        unnest(sqlc.arg(traceparents)::text[]) AS traceparents, unnest(sqlc.arg(payloads)::bytea[]) AS payloads,
        unnest(sqlc.arg(wants_receipts)::boolean[]) AS wants_receipts) AS u
    RETURNING seq, created_at, wants_receipt
)
INSERT INTO outbox_awaiting (seq, created_at)
SELECT seq, created_at FROM written WHERE wants_receipt;

-- name: OutboxUnpublished :many
-- The rows after the relay's cursor in commit order. ready: the row's
-- transaction is older than every running one, so no row can still commit
-- before it in this order; ready rows come first, and only they may be
-- published. Events of one referral come from transactions that follow
-- each other, so they are in order here. published: the row was published
-- before its migration to the cursor (00015) and is sent again as it was.
SELECT o.seq, o.txid, o.subject, o.msg_id, o.traceparent, o.payload, o.republished, o.chain_pos,
       (o.txid < pg_snapshot_xmin(pg_current_snapshot()))::boolean AS ready,
       (p.seq IS NOT NULL)::boolean AS published
FROM outbox o
LEFT JOIN outbox_published p ON p.seq = o.seq
WHERE (o.txid, o.seq) > (sqlc.arg(after_txid)::xid8, sqlc.arg(after_seq)::bigint)
ORDER BY o.txid, o.seq
LIMIT sqlc.arg(max_rows);

-- name: RelayCursor :one
-- The last (txid, seq) the relay recorded as published.
SELECT txid, seq FROM relay_cursor;

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
-- Records where the events were published and moves the cursor to the last
-- of them (last_txid, last_seq), in one statement; the outbox rows are not
-- touched. The cursor only moves forward.
-- An event published before the migration to the cursor (00015) and again
-- after it keeps its first record. NOT EXISTS, not ON CONFLICT: a
-- speculative insert writes 110 bytes more WAL per event, and only the
-- leading relay writes here.
WITH published AS (
    INSERT INTO outbox_published (seq, stream_seq)
    SELECT u.seq, u.stream_seq
    FROM (SELECT unnest(sqlc.arg(seqs)::bigint[]) AS seq, unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seq) AS u
    WHERE NOT EXISTS (SELECT 1 FROM outbox_published p WHERE p.seq = u.seq)
)
UPDATE relay_cursor c
SET txid = sqlc.arg(last_txid)::xid8, seq = sqlc.arg(last_seq)::bigint
WHERE (sqlc.arg(last_txid)::xid8, sqlc.arg(last_seq)::bigint) > (c.txid, c.seq);

-- name: OutboxUnreceipted :many
-- Published events whose receipt did not come back within the timeout of
-- their last send (cutoff is now minus the timeout), oldest first. Any event
-- is written before it is sent, so created_at < cutoff narrows the scan of
-- outbox_awaiting.
SELECT o.seq, o.subject, o.msg_id, o.traceparent, o.payload, o.republished
FROM outbox_awaiting a
JOIN outbox o ON o.seq = a.seq
JOIN outbox_published p ON p.seq = o.seq
WHERE a.created_at < sqlc.arg(cutoff) AND coalesce(o.resent_at, p.published_at) < sqlc.arg(cutoff)
ORDER BY a.seq
LIMIT sqlc.arg(max_rows);

-- name: OutboxMarkResent :exec
-- Records a re-send of the events: neither column is indexed, so this is an
-- in-place (HOT) update.
UPDATE outbox
SET republished = republished + 1, resent_at = now()
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]);

-- name: OutboxMarkReceipted :exec
-- Records receipts, in place (no indexed column changes), and takes the
-- events off outbox_awaiting. A receipt counts only from the agency the
-- event was addressed to (the third token of its subject), and only the
-- first of an event's receipts is kept.
WITH receipted AS (
    UPDATE outbox o
    SET receipted_at = now(), receipt_outcome = u.outcome, receipt_reason = u.reason
    FROM (SELECT unnest(sqlc.arg(event_ids)::uuid[]) AS event_id, unnest(sqlc.arg(froms)::text[]) AS from_agency,
                 unnest(sqlc.arg(outcomes)::text[]) AS outcome, unnest(sqlc.arg(reasons)::text[]) AS reason) AS u
    WHERE o.event_id = u.event_id AND o.receipted_at IS NULL AND split_part(o.subject, '.', 3) = u.from_agency
    RETURNING o.seq
)
DELETE FROM outbox_awaiting a USING receipted r WHERE a.seq = r.seq;

-- name: OutboxNotify :exec
SELECT pg_notify('refbus_outbox', '');

-- name: OutboxListen :exec
LISTEN refbus_outbox;

-- name: RelayTryLock :one
SELECT pg_try_advisory_lock(sqlc.arg(key)::bigint);
