-- name: AuditClock :one
-- The database's time, so that "stuck" is judged by the clock that wrote
-- published_at, not by the auditor's. refbus-audit runs every query here
-- in a READ ONLY transaction: it writes nothing.
SELECT now()::timestamptz AS now;

-- name: AuditOutbox :many
-- Every event of one type this agency sent, in order, a page at a time
-- (after_seq is the last seq of the previous page, 0 for the first).
-- stream_seq and published_at are those of the first publish, NULL while
-- the event is not published.
SELECT o.seq, o.event_id, o.event_type, o.subject, o.msg_id, o.payload, o.created_at, p.stream_seq, p.published_at,
       o.republished, o.receipted_at, o.receipt_outcome, o.receipt_reason
FROM outbox o
LEFT JOIN outbox_published p ON p.seq = o.seq
WHERE o.event_type = sqlc.arg(event_type) AND o.seq > sqlc.arg(after_seq)
ORDER BY o.seq
LIMIT sqlc.arg(max_rows);

-- name: AuditInbox :many
-- Every event of one type this agency received, applied or rejected, a page
-- at a time in key order (after the source and event id of the previous
-- page, empty strings for the first).
SELECT source, event_id, event_type, subject, stream_seq, outcome, received_at
FROM inbox
WHERE event_type = sqlc.arg(event_type)
  AND (source, event_id) > (sqlc.arg(after_source)::text, sqlc.arg(after_event_id)::text)
ORDER BY source, event_id
LIMIT sqlc.arg(max_rows);
