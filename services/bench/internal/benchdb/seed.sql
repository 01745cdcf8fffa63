-- name: ReferralSeedIncoming :exec
-- n received referrals from the other nodes, spread over statuses,
-- services and the last year, one in fifty overdue.
INSERT INTO core.referral (id, case_id, from_agency, to_agency, service, note, status, seq_in, created_at, updated_at, received_at, overdue_at)
SELECT gen_random_uuid(), gen_random_uuid(),
       (sqlc.arg(from_agencies)::text[])[1 + i % cardinality(sqlc.arg(from_agencies)::text[])],
       sqlc.arg(agency)::text,
       (ARRAY['family_support', 'crisis_shelter', 'psychological_help', 'disability_support', 'benefits_and_housing'])[1 + i % 5],
       'Seeded referral ' || i,
       (ARRAY['received', 'accepted', 'in_progress', 'on_hold', 'completed', 'declined', 'completed', 'completed'])[1 + i % 8],
       1,
       now() - (i * interval '5 minutes'), now() - (i * interval '5 minutes'), now() - (i * interval '5 minutes'),
       CASE WHEN i % 50 = 0 THEN now() END
FROM generate_series(1, sqlc.arg(n)::integer) AS i;

-- name: ReferralAnalyze :exec
-- Fresh planner statistics after seeding.
ANALYZE core.referral;
