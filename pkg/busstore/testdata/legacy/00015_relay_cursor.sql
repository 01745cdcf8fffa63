-- +goose Up

-- The relay no longer marks each row it publishes (a non-HOT update that
-- rewrote the whole row, payload included, and every index): it keeps a
-- cursor in commit order instead, (txid, seq), and passes only rows of
-- transactions older than every running one (txid below the snapshot's
-- xmin), so a row that commits late is never skipped.
--
-- Rows written before this migration read txid 0: a constant default is
-- stored once in the catalogue, so the column is added without rewriting
-- the table, and 0 sorts before the txid of any transaction, including one
-- that began before this migration and writes to outbox after it.
ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE outbox ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
CREATE INDEX outbox_commit_order ON outbox (txid, seq);

-- outbox_published says where and when each event was first published.
-- Append-only and narrow: the relay inserts a row per event in the same
-- statement that moves its cursor. No foreign key to outbox: checking one
-- locks the outbox row (FOR KEY SHARE), which writes WAL and dirties its
-- page for every event, the cost this table is here to avoid; only the
-- relay writes it, with seqs it read from outbox, whose rows are never
-- deleted.
CREATE TABLE outbox_published (
    seq          bigint PRIMARY KEY,
    stream_seq   bigint      NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
);
-- published_at kept the time of the last publish, not the first: it is
-- the best there is. A row queued again for want of a receipt (published_at
-- NULL) counts as published at its creation, so that the resend step sends
-- it at once, and counts that send itself.
INSERT INTO outbox_published (seq, stream_seq, published_at)
SELECT seq, stream_seq, coalesce(published_at, created_at)
FROM outbox
WHERE stream_seq IS NOT NULL;

-- When the relay last sent the event again for want of a receipt; the
-- next re-send waits ReceiptTimeout from it (or from the first publish).
-- Not indexed, so recording it is a HOT update.
ALTER TABLE outbox ADD COLUMN resent_at timestamptz;
UPDATE outbox SET resent_at = published_at WHERE republished > 0 AND published_at IS NOT NULL;
UPDATE outbox SET republished = republished - 1 WHERE published_at IS NULL AND stream_seq IS NOT NULL;

-- relay_cursor is the last (txid, seq) the relay published: every row
-- before it in that order was published. It starts just before the first
-- row never published, or after the last row.
CREATE TABLE relay_cursor (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    txid xid8   NOT NULL,
    seq  bigint NOT NULL
);
INSERT INTO relay_cursor (txid, seq)
SELECT '0', coalesce((SELECT min(seq) - 1 FROM outbox WHERE stream_seq IS NULL), (SELECT max(seq) FROM outbox), 0);

-- The resend step scans the events awaiting a receipt oldest first (an
-- event is published after it is written, so created_at bounds when it
-- was sent), and services/bench counts them.
DROP INDEX outbox_pending;
DROP INDEX outbox_awaiting_receipt;
CREATE INDEX outbox_awaiting_receipt ON outbox (created_at) WHERE wants_receipt AND receipted_at IS NULL;
ALTER TABLE outbox DROP COLUMN published_at;
ALTER TABLE outbox DROP COLUMN stream_seq;

-- +goose Down
ALTER TABLE outbox ADD COLUMN published_at timestamptz;
ALTER TABLE outbox ADD COLUMN stream_seq bigint;
-- Rows after the cursor stay unpublished (published_at NULL) for the old
-- relay to publish; published_at is the time of the last send, as it was.
UPDATE outbox o
SET stream_seq = p.stream_seq, published_at = greatest(p.published_at, o.resent_at)
FROM outbox_published p, relay_cursor c
WHERE p.seq = o.seq AND (o.txid, o.seq) <= (c.txid, c.seq);
DROP INDEX outbox_awaiting_receipt;
CREATE INDEX outbox_awaiting_receipt ON outbox (published_at) WHERE wants_receipt AND receipted_at IS NULL;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
ALTER TABLE outbox DROP COLUMN resent_at;
DROP TABLE relay_cursor;
DROP TABLE outbox_published;
DROP INDEX outbox_commit_order;
ALTER TABLE outbox DROP COLUMN txid;
