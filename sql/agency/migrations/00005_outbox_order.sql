-- +goose Up

-- The relay reads every unpublished row each round, so a row whose
-- transaction commits late is never skipped: it needs no snapshot-xmin
-- gate, only sequence order.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

-- +goose Down
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (txid, seq) WHERE published_at IS NULL;
