-- +goose Up

-- sla_timer holds the deadlines the sending agency waits on: acceptance,
-- then completion. A timer fires once (fired_at, set in the transaction
-- that sends the overdue events) and is cleared when the move it waits for
-- is made or the referral ends.
CREATE TABLE sla_timer (
    referral_id uuid        NOT NULL REFERENCES referral (id),
    kind        text        NOT NULL CHECK (kind IN ('accept', 'complete')),
    due_at      timestamptz NOT NULL,
    fired_at    timestamptz,
    cleared_at  timestamptz,
    PRIMARY KEY (referral_id, kind)
);
CREATE INDEX sla_timer_due ON sla_timer (due_at) WHERE fired_at IS NULL AND cleared_at IS NULL;

-- When the other party or the sender reported the referral overdue.
ALTER TABLE referral ADD COLUMN overdue_at timestamptz;

-- escalation is what the coordinator agency sees of other agencies'
-- overdue referrals: enough to act, nothing of the case's content.
CREATE TABLE escalation (
    referral_id uuid        NOT NULL,
    kind        text        NOT NULL,
    case_id     uuid        NOT NULL,
    from_agency text        NOT NULL,
    to_agency   text        NOT NULL,
    service     text        NOT NULL,
    due_at      timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (referral_id, kind)
);

-- +goose Down
DROP TABLE escalation;
ALTER TABLE referral DROP COLUMN overdue_at;
DROP TABLE sla_timer;
