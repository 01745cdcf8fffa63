-- name: AuditOutbox :many
-- Every event this agency sent, in order.
SELECT event_id, event_type, subject, msg_id, stream_seq, published_at, receipted_at, receipt_outcome
FROM outbox ORDER BY seq;
