-- name: ReferralSeed :exec
-- n referrals of a node with four organizations, about a year of them,
-- newest first: four in five received from the other nodes, one in five
-- sent to them. The node's own organization (its name) has two in five,
-- the others one in five each. Most are done (completed, declined), three
-- in twenty are open; one in 47 was overdue. Referrals come in cases of two to
-- four (case ids shared along runs of nine: 2 + 3 + 4).
INSERT INTO core.referral (id, case_id, from_agency, to_agency, from_org, to_org, service, note, status, seq_in, seq_out,
                           created_at, updated_at, received_at, overdue_at, urgency, action_due)
SELECT gen_random_uuid(),
       md5('case ' || (i / 9 * 3 + CASE WHEN i % 9 < 2 THEN 0 WHEN i % 9 < 5 THEN 1 ELSE 2 END))::uuid,
       CASE WHEN incoming THEN peer ELSE self END,
       CASE WHEN incoming THEN self ELSE peer END,
       CASE WHEN incoming THEN peer ELSE org END,
       CASE WHEN incoming THEN org ELSE peer END,
       (ARRAY['family_support', 'crisis_shelter', 'psychological_help', 'disability_support', 'benefits_and_housing'])[1 + i % 5],
       'Seeded referral ' || i,
       st,
       CASE WHEN incoming THEN 1 ELSE 0 END, CASE WHEN incoming THEN 0 ELSE 1 END,
       at, at, at,
       CASE WHEN i % 47 = 0 THEN at + interval '3 days' END,
       CASE WHEN i % 5 = 1 THEN 'urgent' ELSE 'routine' END,
       -- What the node has to do: its open incoming referrals, due to be
       -- completed within 30 days of arriving (the needs-action view).
       CASE WHEN incoming AND st IN ('accepted', 'in_progress', 'on_hold') THEN at + interval '30 days' END
FROM (SELECT i, i % 5 <> 4 AS incoming,
             (ARRAY['completed', 'completed', 'completed', 'completed', 'completed', 'declined', 'declined', 'completed', 'cancelled', 'completed',
                    'completed', 'declined', 'completed', 'in_progress', 'completed', 'declined', 'completed', 'accepted', 'completed', 'on_hold'])[1 + i / 5 % 20] AS st,
             sqlc.arg(agency)::text AS self,
             (sqlc.arg(peers)::text[])[1 + i / 7 % cardinality(sqlc.arg(peers)::text[])] AS peer,
             (ARRAY[sqlc.arg(agency)::text, sqlc.arg(agency)::text, sqlc.arg(agency)::text || '-north', sqlc.arg(agency)::text || '-south', sqlc.arg(agency)::text || '-east'])[1 + i / 3 % 5] AS org,
             now() - i * interval '30 seconds' AS at
      FROM generate_series(1, sqlc.arg(n)::integer) AS i) AS g;

-- name: ReferralAnalyze :exec
-- Fresh planner statistics after seeding.
ANALYZE core.referral;

-- name: ReferralSeedCase :one
-- A case of the seeded referrals with referrals of org (incoming or
-- sent), for the case page.
SELECT case_id FROM core.referral WHERE to_org = sqlc.arg(org) OR from_org = sqlc.arg(org) ORDER BY created_at DESC LIMIT 1;
