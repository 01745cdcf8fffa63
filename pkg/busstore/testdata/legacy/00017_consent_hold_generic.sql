-- +goose Up

-- consent_hold_all plans its two statements once per session: its array
-- parameter made Postgres plan the consent lookup anew on every call
-- (about 115 µs each, most of the function's cost), because a plan made
-- for the actual array always looks cheaper than the kept one. The kept
-- plan is the primary key lookup either way.
ALTER FUNCTION consent_hold_all(uuid[], timestamptz) SET plan_cache_mode = force_generic_plan;

-- +goose Down
ALTER FUNCTION consent_hold_all(uuid[], timestamptz) RESET plan_cache_mode;
