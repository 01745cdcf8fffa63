-- +goose Up

-- The relay reads every unpublished row each round, so a row whose
-- transaction commits late is never skipped: it needs no snapshot-xmin
-- gate, only sequence order.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
ALTER TABLE outbox DROP COLUMN txid;

-- +goose Down
ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (txid, seq) WHERE published_at IS NULL;
