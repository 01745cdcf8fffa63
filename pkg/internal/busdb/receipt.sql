-- name: OutboxMarkReceipted :exec
-- Records receipts, in place (no indexed column changes), and takes the
-- events off outbox_awaiting. A receipt counts only from the node the
-- event was addressed to (the third token of its subject), and only the
-- first of an event's receipts is kept.
WITH receipted AS (
    UPDATE bus.outbox o
    SET receipted_at = now(), receipt_outcome = u.outcome, receipt_reason = u.reason
    FROM (SELECT unnest(sqlc.arg(event_ids)::uuid[]) AS event_id, unnest(sqlc.arg(froms)::text[]) AS from_node,
                 unnest(sqlc.arg(outcomes)::text[]) AS outcome, unnest(sqlc.arg(reasons)::text[]) AS reason) AS u
    WHERE o.event_id = u.event_id AND o.receipted_at IS NULL AND split_part(o.subject, '.', 3) = u.from_node
    RETURNING o.seq
)
DELETE FROM bus.outbox_awaiting a USING receipted r WHERE a.seq = r.seq;
