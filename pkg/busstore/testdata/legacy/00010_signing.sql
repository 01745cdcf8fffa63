-- +goose Up

-- The relay signs each event and chains it to the one it signed before
-- (schemas/SIGNING.md), and stores the signed bytes in payload before it
-- publishes them, so that a re-publish after a crash or for want of a
-- receipt carries the same bytes. chain_pos orders the chain; the row with
-- the highest is the chain's head.
ALTER TABLE outbox ADD COLUMN chain_pos bigint;
ALTER TABLE outbox ADD COLUMN chain_hash text;
CREATE UNIQUE INDEX outbox_chain ON outbox (chain_pos) WHERE chain_pos IS NOT NULL;

-- +goose Down
DROP INDEX outbox_chain;
ALTER TABLE outbox DROP COLUMN chain_hash;
ALTER TABLE outbox DROP COLUMN chain_pos;
