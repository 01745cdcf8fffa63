-- +goose Up

-- work is a unit of work a node sent, and what its addressee said of it.
CREATE TABLE testapp.work (
    id           text PRIMARY KEY,
    to_node      text NOT NULL,
    delivered_at timestamptz,
    refused      text
);

-- effect is what applying a work event does: one row each time, with no
-- unique key, so that a repeat shows.
CREATE TABLE testapp.effect (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_id    text   NOT NULL,
    source     text   NOT NULL,
    seq        bigint NOT NULL DEFAULT 0
);

-- seq_in is the last sequence applied per subject, for events that carry one.
CREATE TABLE testapp.seq_in (
    subject text PRIMARY KEY,
    seq     bigint NOT NULL
);

-- receipted logs every receipt the handler was told of, repeats included.
CREATE TABLE testapp.receipted (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_id   text    NOT NULL,
    from_node text    NOT NULL,
    refused   boolean NOT NULL,
    reason    text    NOT NULL
);

-- +goose Down
DROP TABLE testapp.receipted;
DROP TABLE testapp.seq_in;
DROP TABLE testapp.effect;
DROP TABLE testapp.work;
