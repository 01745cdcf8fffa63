-- +goose Up

-- agency_key is this agency's X25519 key for confidential fields: other
-- agencies seal fields meant for it alone (a shelter's address) to the
-- public half, which the service directory publishes. Made at first start.
CREATE TABLE agency_key (
    agency      text PRIMARY KEY,
    private_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE agency_key;
