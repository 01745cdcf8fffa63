-- name: OutboxCreatedTimes :many
-- When each event of a type was committed, for latency reports.
SELECT event_id, created_at FROM outbox WHERE event_type = $1;

-- name: InboxReceivedTimes :many
SELECT event_id, received_at FROM inbox WHERE event_type = $1 AND outcome = 'applied';

-- name: InboxRejected :many
SELECT source, event_id, event_type, subject, stream_seq, reason, received_at
FROM inbox WHERE outcome = 'rejected'
ORDER BY received_at DESC
LIMIT $1;

-- name: InboxCounts :many
SELECT event_type, outcome, count(*) AS n FROM inbox GROUP BY event_type, outcome;

-- name: OutboxCounts :many
SELECT o.event_type, count(*) AS n, count(p.seq) AS published, count(o.receipted_at) AS receipted
FROM outbox o LEFT JOIN outbox_published p ON p.seq = o.seq
GROUP BY o.event_type;
