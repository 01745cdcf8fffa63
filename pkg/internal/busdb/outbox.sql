-- name: OutboxInsert :exec
-- Writes the events, and lists those that want a receipt as awaiting it.
WITH written AS (
    INSERT INTO bus.outbox (event_id, event_type, subject, msg_id, traceparent, payload, wants_receipt)
    SELECT * FROM (SELECT
        unnest(sqlc.arg(event_ids)::uuid[]) AS event_ids, unnest(sqlc.arg(event_types)::text[]) AS event_types,
        unnest(sqlc.arg(subjects)::text[]) AS subjects, unnest(sqlc.arg(msg_ids)::text[]) AS msg_ids,
        unnest(sqlc.arg(traceparents)::text[]) AS traceparents, unnest(sqlc.arg(payloads)::bytea[]) AS payloads,
        unnest(sqlc.arg(wants_receipts)::boolean[]) AS wants_receipts) AS u
    RETURNING seq, created_at, wants_receipt
)
INSERT INTO bus.outbox_awaiting (seq, created_at)
SELECT seq, created_at FROM written WHERE wants_receipt;

-- name: OutboxUnpublished :many
-- The rows after the relay's cursor in commit order. ready: the row's
-- transaction is older than every running one, so no row can still commit
-- before it in this order; ready rows come first, and only they may be
-- published. published: the row has a publish on record although it is
-- after the cursor (a store migrated to the cursor with such rows); it is
-- sent again as it was.
SELECT o.seq, o.txid, o.subject, o.msg_id, o.traceparent, o.payload, o.republished, o.chain_pos,
       (o.txid < pg_snapshot_xmin(pg_current_snapshot()))::boolean AS ready,
       (p.seq IS NOT NULL)::boolean AS published
FROM bus.outbox o
LEFT JOIN bus.outbox_published p ON p.seq = o.seq
WHERE (o.txid, o.seq) > (sqlc.arg(after_txid)::xid8, sqlc.arg(after_seq)::bigint)
ORDER BY o.txid, o.seq
LIMIT sqlc.arg(max_rows);

-- name: RelayCursor :one
-- The last (txid, seq) the relay recorded as published.
SELECT txid, seq FROM bus.relay_cursor;

-- name: OutboxChainHead :one
-- The last event the relay signed: the head of the node's hash chain.
SELECT chain_pos::bigint AS chain_pos, chain_hash::text AS chain_hash
FROM bus.outbox
WHERE chain_pos IS NOT NULL
ORDER BY chain_pos DESC
LIMIT 1;

-- name: OutboxSign :exec
-- Stores signed events before they are published (schemas/SIGNING.md).
UPDATE bus.outbox
SET payload = (sqlc.arg(payloads)::bytea[])[array_position(sqlc.arg(seqs)::bigint[], seq)],
    chain_pos = (sqlc.arg(chain_poss)::bigint[])[array_position(sqlc.arg(seqs)::bigint[], seq)],
    chain_hash = (sqlc.arg(chain_hashes)::text[])[array_position(sqlc.arg(seqs)::bigint[], seq)]
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]);

-- name: OutboxMarkPublished :exec
-- Records where the events were published and moves the cursor to the last
-- of them (last_txid, last_seq), in one statement; the outbox rows are not
-- touched. The cursor only moves forward. An event published again (after
-- a crash, before its cursor was recorded) keeps its first record. NOT
-- EXISTS rather than ON CONFLICT: a speculative insert writes more WAL per
-- event, and only the leading relay writes here.
WITH published AS (
    INSERT INTO bus.outbox_published (seq, stream_seq)
    SELECT u.seq, u.stream_seq
    FROM (SELECT unnest(sqlc.arg(seqs)::bigint[]) AS seq, unnest(sqlc.arg(stream_seqs)::bigint[]) AS stream_seq) AS u
    WHERE NOT EXISTS (SELECT 1 FROM bus.outbox_published p WHERE p.seq = u.seq)
)
UPDATE bus.relay_cursor c
SET txid = sqlc.arg(last_txid)::xid8, seq = sqlc.arg(last_seq)::bigint
WHERE (sqlc.arg(last_txid)::xid8, sqlc.arg(last_seq)::bigint) > (c.txid, c.seq);

-- name: OutboxUnreceipted :many
-- Published events whose receipt did not come back within the timeout of
-- their last send (cutoff is now minus the timeout), oldest first. An event
-- is written before it is sent, so created_at < cutoff narrows the scan of
-- outbox_awaiting.
SELECT o.seq, o.subject, o.msg_id, o.traceparent, o.payload, o.republished
FROM bus.outbox_awaiting a
JOIN bus.outbox o ON o.seq = a.seq
JOIN bus.outbox_published p ON p.seq = o.seq
WHERE a.created_at < sqlc.arg(cutoff) AND coalesce(o.resent_at, p.published_at) < sqlc.arg(cutoff)
ORDER BY a.seq
LIMIT sqlc.arg(max_rows);

-- name: OutboxMarkResent :exec
-- Records a re-send of the events: neither column is indexed, so this is an
-- in-place (HOT) update.
UPDATE bus.outbox
SET republished = republished + 1, resent_at = now()
WHERE seq = ANY(sqlc.arg(seqs)::bigint[]);

-- name: OutboxNotify :exec
SELECT pg_notify('refbus_outbox', '');

-- name: OutboxListen :exec
LISTEN refbus_outbox;

-- name: RelayTryLock :one
SELECT pg_try_advisory_lock(sqlc.arg(key)::bigint);

-- name: OutboxListSent :many
-- Every event of one type this node sent, in order, a page at a time
-- (after_seq is the last seq of the previous page, 0 for the first).
-- stream_seq and published_at are those of the first publish, NULL while
-- the event is not published.
SELECT o.seq, o.event_id, o.event_type, o.subject, o.msg_id, o.payload, o.created_at, p.stream_seq, p.published_at,
       o.republished, o.receipted_at, o.receipt_outcome, o.receipt_reason
FROM bus.outbox o
LEFT JOIN bus.outbox_published p ON p.seq = o.seq
WHERE o.event_type = sqlc.arg(event_type) AND o.seq > sqlc.arg(after_seq)
ORDER BY o.seq
LIMIT sqlc.arg(max_rows);

-- name: OutboxLastSeq :one
-- The newest event's seq, 0 when none was written.
SELECT coalesce(max(seq), 0)::bigint AS seq FROM bus.outbox;

-- name: OutboxAwaitingCount :one
-- How many events still wait for their receipt.
SELECT count(*)::bigint AS n FROM bus.outbox_awaiting;
