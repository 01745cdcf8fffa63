-- +goose Up

-- A dead letter keeps its message when the consumer had it in hand on its
-- last delivery: a node may not read the stream by sequence, so Redrive
-- cannot fetch it back. One known only from JetStream's advisory (its
-- deliveries ran out by ack timeouts) has no message unless the node could
-- read it, and a reason that says who can re-drive it.
ALTER TABLE bus.dead_letter
    ADD COLUMN IF NOT EXISTS header  jsonb,
    ADD COLUMN IF NOT EXISTS payload bytea,
    ADD COLUMN IF NOT EXISTS reason  text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE bus.dead_letter
    DROP COLUMN reason,
    DROP COLUMN payload,
    DROP COLUMN header;
