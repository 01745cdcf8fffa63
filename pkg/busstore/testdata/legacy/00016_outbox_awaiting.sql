-- +goose Up

-- outbox_awaiting lists the events still waiting for their receipt: a row
-- is added with the event and deleted when its receipt comes. It replaces
-- the partial index outbox_awaiting_receipt, whose predicate (receipted_at
-- IS NULL) made recording a receipt rewrite the whole outbox row, payload
-- included, and every index (about 740 bytes of WAL per event); without it,
-- recording a receipt is an in-place (HOT) update.
CREATE TABLE outbox_awaiting (
    seq        bigint PRIMARY KEY,
    created_at timestamptz NOT NULL
);
INSERT INTO outbox_awaiting (seq, created_at)
SELECT seq, created_at FROM outbox WHERE wants_receipt AND receipted_at IS NULL;
DROP INDEX outbox_awaiting_receipt;

-- +goose Down
CREATE INDEX outbox_awaiting_receipt ON outbox (created_at) WHERE wants_receipt AND receipted_at IS NULL;
DROP TABLE outbox_awaiting;
