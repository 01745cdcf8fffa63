-- +goose Up

-- A supervisor manages the node's local accounts in the UI: a disabled
-- user cannot sign in, their sessions end, and a bearer token whose
-- subject names them is refused. The row stays, so what they did and
-- looked at still names them.
ALTER TABLE core.web_user
    ADD COLUMN disabled_at     timestamptz,
    ADD COLUMN last_sign_in_at timestamptz;

-- case_access is who opened which case, and when: a row each time a
-- person opens a referral's page, or a person or system reads a referral
-- or a case through the API. It says who looked, not what they saw: ids
-- (random UUIDs that identify no one outside the node) and the name of
-- the node's own user, nothing of the family, so erasing a person keeps
-- it. No foreign key: the rows outlive whatever they point at.
CREATE TABLE core.case_access (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     uuid        NOT NULL,
    referral_id uuid,                      -- NULL: the case as a whole
    username    text        NOT NULL,      -- a user, or a token's subject
    org         text        NOT NULL DEFAULT '', -- the organization they work for; empty: the node's own
    via         text        NOT NULL CHECK (via IN ('ui', 'api')),
    at          timestamptz NOT NULL DEFAULT now()
);
-- The auditor's page: newest first, of one case, of one user.
CREATE INDEX case_access_at ON core.case_access (at DESC, id DESC);
CREATE INDEX case_access_case ON core.case_access (case_id, at DESC, id DESC);
CREATE INDEX case_access_user ON core.case_access (username, at DESC, id DESC);

-- +goose Down
DROP TABLE core.case_access;
ALTER TABLE core.web_user DROP COLUMN last_sign_in_at, DROP COLUMN disabled_at;
