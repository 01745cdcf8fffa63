-- +goose Up

-- The inbox and sent pages at a million referrals (issue 17, Speed).
--
-- Their counts per status were a count over every referral of the
-- organization on every page view (half a second at a million). They are
-- kept instead: every statement that inserts, moves or deletes referrals
-- appends what it changed to referral_count_delta, in its own transaction;
-- the node folds those rows into referral_count every second. A page reads
-- referral_count plus the few rows not folded yet. Nothing is updated in
-- place by the writers, so concurrent creates do not queue on a counter row.
--
-- Counted per organization, status and service, either way: a referral
-- row is incoming at one end and outgoing at the other, and a node keeps
-- only its own end, so only the side whose agency is this node is ever
-- read (the other costs a row per statement group, not per referral).
-- By service too, so a filtered page knows how many rows it can find and
-- stops at the last (see ListPage).
CREATE TABLE core.referral_count (
    agency  text   NOT NULL,
    side    text   NOT NULL CHECK (side IN ('in', 'out')),
    org     text   NOT NULL,
    status  text   NOT NULL,
    service text   NOT NULL,
    n       bigint NOT NULL,
    -- Of them, how many are overdue (overdue_at set).
    overdue bigint NOT NULL,
    PRIMARY KEY (agency, side, org, status, service)
);

-- Changes not folded yet; signed: a move is -1 of the old status and +1
-- of the new. No index: it holds about a second of changes and is read
-- whole.
CREATE TABLE core.referral_count_delta (
    agency  text   NOT NULL,
    side    text   NOT NULL,
    org     text   NOT NULL,
    status  text   NOT NULL,
    service text   NOT NULL,
    n       bigint NOT NULL,
    overdue bigint NOT NULL
);

-- Statement-level triggers: a group of 128 referrals written in one
-- statement adds a few rows, not 128.
-- +goose StatementBegin
CREATE FUNCTION core.referral_count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core.referral_count_delta (agency, side, org, status, service, n, overdue)
    SELECT agency, side, org, status, service, sum(n), sum(overdue)
    FROM (SELECT to_agency AS agency, 'in' AS side, to_org AS org, status, service, 1 AS n, (overdue_at IS NOT NULL)::int AS overdue FROM new_rows
          UNION ALL
          SELECT from_agency, 'out', from_org, status, service, 1, (overdue_at IS NOT NULL)::int FROM new_rows
          UNION ALL
          SELECT to_agency, 'in', to_org, status, service, -1, -(overdue_at IS NOT NULL)::int FROM old_rows
          UNION ALL
          SELECT from_agency, 'out', from_org, status, service, -1, -(overdue_at IS NOT NULL)::int FROM old_rows) AS c
    GROUP BY agency, side, org, status, service
    HAVING sum(n) <> 0 OR sum(overdue) <> 0;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- A trigger names only the transition tables of its own event: the
-- others are empty tables of the same shape.
-- +goose StatementBegin
CREATE FUNCTION core.referral_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core.referral_count_delta (agency, side, org, status, service, n, overdue)
    SELECT to_agency, 'in', to_org, status, service, count(*), count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM new_rows
    GROUP BY to_agency, to_org, status, service
    UNION ALL
    SELECT from_agency, 'out', from_org, status, service, count(*), count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM new_rows
    GROUP BY from_agency, from_org, status, service;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION core.referral_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core.referral_count_delta (agency, side, org, status, service, n, overdue)
    SELECT to_agency, 'in', to_org, status, service, -count(*), -count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM old_rows
    GROUP BY to_agency, to_org, status, service
    UNION ALL
    SELECT from_agency, 'out', from_org, status, service, -count(*), -count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM old_rows
    GROUP BY from_agency, from_org, status, service;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER referral_count_insert AFTER INSERT ON core.referral
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.referral_count_inserted();
CREATE TRIGGER referral_count_update AFTER UPDATE ON core.referral
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION core.referral_count_changed();
CREATE TRIGGER referral_count_delete AFTER DELETE ON core.referral
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION core.referral_count_deleted();

-- The referrals made before.
INSERT INTO core.referral_count (agency, side, org, status, service, n, overdue)
SELECT to_agency, 'in', to_org, status, service, count(*), count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM core.referral
GROUP BY to_agency, to_org, status, service
UNION ALL
SELECT from_agency, 'out', from_org, status, service, count(*), count(*) FILTER (WHERE overdue_at IS NOT NULL) FROM core.referral
GROUP BY from_agency, from_org, status, service;

-- The pages read newest first, ties by id newest first: the list indexes
-- now end in id DESC as the ORDER BY does, so a page is a range of one
-- index read in order and stopped at its LIMIT, with no sort. (They ended
-- in id ascending, which no scan direction matches.)
DROP INDEX core.referral_incoming, core.referral_outgoing, core.referral_incoming_org, core.referral_outgoing_org, core.referral_overdue;
CREATE INDEX referral_incoming ON core.referral (to_agency, created_at DESC, id DESC);
CREATE INDEX referral_outgoing ON core.referral (from_agency, created_at DESC, id DESC);
CREATE INDEX referral_incoming_org ON core.referral (to_agency, to_org, created_at DESC, id DESC);
CREATE INDEX referral_outgoing_org ON core.referral (from_agency, from_org, created_at DESC, id DESC);
-- The overdue filter, either way, of one organization or all: partial,
-- so they hold the overdue referrals only (one in fifty) and cost nothing
-- when a referral is made.
CREATE INDEX referral_overdue ON core.referral (to_agency, created_at DESC, id DESC) WHERE overdue_at IS NOT NULL;
CREATE INDEX referral_overdue_org ON core.referral (to_agency, to_org, created_at DESC, id DESC) WHERE overdue_at IS NOT NULL;
CREATE INDEX referral_overdue_out ON core.referral (from_agency, created_at DESC, id DESC) WHERE overdue_at IS NOT NULL;
CREATE INDEX referral_overdue_out_org ON core.referral (from_agency, from_org, created_at DESC, id DESC) WHERE overdue_at IS NOT NULL;

-- +goose Down
DROP INDEX core.referral_overdue_out_org, core.referral_overdue_out, core.referral_overdue_org, core.referral_overdue,
    core.referral_outgoing_org, core.referral_incoming_org, core.referral_outgoing, core.referral_incoming;
CREATE INDEX referral_incoming ON core.referral (to_agency, created_at DESC, id);
CREATE INDEX referral_outgoing ON core.referral (from_agency, created_at DESC, id);
CREATE INDEX referral_incoming_org ON core.referral (to_agency, to_org, created_at DESC, id);
CREATE INDEX referral_outgoing_org ON core.referral (from_agency, from_org, created_at DESC, id);
CREATE INDEX referral_overdue ON core.referral (to_agency, created_at DESC) WHERE overdue_at IS NOT NULL;
DROP TRIGGER referral_count_delete ON core.referral;
DROP TRIGGER referral_count_update ON core.referral;
DROP TRIGGER referral_count_insert ON core.referral;
DROP FUNCTION core.referral_count_deleted(), core.referral_count_inserted(), core.referral_count_changed();
DROP TABLE core.referral_count_delta, core.referral_count;
