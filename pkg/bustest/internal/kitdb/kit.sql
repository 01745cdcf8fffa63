-- name: KitInboxCounts :many
SELECT event_type, outcome, count(*)::bigint AS n
FROM bus.inbox
GROUP BY event_type, outcome;

-- name: KitOutboxCounts :many
SELECT o.event_type, count(*)::bigint AS written, count(p.seq)::bigint AS published,
       count(o.receipted_at)::bigint AS receipted
FROM bus.outbox o
LEFT JOIN bus.outbox_published p ON p.seq = o.seq
GROUP BY o.event_type;

-- name: KitCursorPassed :one
-- Whether the relay's recorded cursor is at or after the event's row.
SELECT ((c.txid, c.seq) >= (o.txid, o.seq))::boolean AS passed
FROM bus.relay_cursor c, bus.outbox o
WHERE o.event_id = sqlc.arg(event_id);

-- name: KitAwaiting :one
-- How many events still wait for their receipt.
SELECT count(*)::bigint AS n FROM bus.outbox_awaiting;
