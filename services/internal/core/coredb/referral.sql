-- name: ReferralInsert :exec
-- Writes new outgoing referrals, a group at a time. A referral's consent
-- categories come joined by commas (they are names from a fixed list).
INSERT INTO core.referral (id, case_id, from_agency, to_agency, from_org, to_org, service, note, status, seq_out, parent_id, traceparent, person_key,
                      consent_id, consent_purpose, consent_categories, consent_expires_at, created_at, updated_at, data_key, urgency)
SELECT u.id, u.case_id, u.from_agency, u.to_agency, u.from_org, u.to_org, u.service, u.note, 'requested', 1,
       NULLIF(u.parent_id, '00000000-0000-0000-0000-000000000000'), u.traceparent, u.person_key,
       u.consent_id, u.consent_purpose, string_to_array(u.consent_categories, ','), u.consent_expires_at, u.created_at, u.created_at, u.data_key, u.urgency
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(case_ids)::uuid[]) AS case_id,
             unnest(sqlc.arg(from_agencies)::text[]) AS from_agency, unnest(sqlc.arg(to_agencies)::text[]) AS to_agency,
             unnest(sqlc.arg(from_orgs)::text[]) AS from_org, unnest(sqlc.arg(to_orgs)::text[]) AS to_org,
             unnest(sqlc.arg(services)::text[]) AS service, unnest(sqlc.arg(notes)::text[]) AS note,
             unnest(sqlc.arg(parent_ids)::uuid[]) AS parent_id, unnest(sqlc.arg(traceparents)::text[]) AS traceparent,
             unnest(sqlc.arg(person_keys)::text[]) AS person_key, unnest(sqlc.arg(consent_ids)::uuid[]) AS consent_id,
             unnest(sqlc.arg(consent_purposes)::text[]) AS consent_purpose,
             unnest(sqlc.arg(consent_categories)::text[]) AS consent_categories,
             unnest(sqlc.arg(consent_expiries)::timestamptz[]) AS consent_expires_at,
             unnest(sqlc.arg(created_ats)::timestamptz[]) AS created_at,
             unnest(sqlc.arg(data_keys)::bytea[]) AS data_key,
             unnest(sqlc.arg(urgencies)::text[]) AS urgency) AS u;

-- name: ReferralReceive :exec
-- Records referrals that arrived from other nodes, with the work records
-- they carried (empty for none), due to be accepted by action_due; a
-- referral seen before is left as it is.
INSERT INTO core.referral (id, case_id, from_agency, to_agency, from_org, to_org, service, note, status, seq_in, parent_id, traceparent, person_key,
                      consent_id, consent_purpose, consent_expires_at, work, received_at, data_key, urgency, action_due)
SELECT u.id, u.case_id, u.from_agency, u.to_agency, u.from_org, u.to_org, u.service, u.note, 'received', 1,
       NULLIF(u.parent_id, '00000000-0000-0000-0000-000000000000'), u.traceparent, u.person_key,
       u.consent_id, u.consent_purpose, u.consent_expires_at, NULLIF(u.work, '')::jsonb, now(), NULLIF(u.data_key, ''), u.urgency, u.action_due
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(case_ids)::uuid[]) AS case_id,
             unnest(sqlc.arg(from_agencies)::text[]) AS from_agency, unnest(sqlc.arg(to_agencies)::text[]) AS to_agency,
             unnest(sqlc.arg(from_orgs)::text[]) AS from_org, unnest(sqlc.arg(to_orgs)::text[]) AS to_org,
             unnest(sqlc.arg(services)::text[]) AS service, unnest(sqlc.arg(notes)::text[]) AS note,
             unnest(sqlc.arg(parent_ids)::uuid[]) AS parent_id, unnest(sqlc.arg(traceparents)::text[]) AS traceparent,
             unnest(sqlc.arg(person_keys)::text[]) AS person_key, unnest(sqlc.arg(consent_ids)::uuid[]) AS consent_id,
             unnest(sqlc.arg(consent_purposes)::text[]) AS consent_purpose,
             unnest(sqlc.arg(consent_expiries)::timestamptz[]) AS consent_expires_at,
             unnest(sqlc.arg(works)::text[]) AS work,
             unnest(sqlc.arg(data_keys)::bytea[]) AS data_key,
             unnest(sqlc.arg(urgencies)::text[]) AS urgency,
             unnest(sqlc.arg(action_dues)::timestamptz[]) AS action_due) AS u
ON CONFLICT (id) DO NOTHING;

-- name: ReferralReceivedNow :many
-- Those of the referrals ids that this transaction recorded (a referral
-- seen before was left as it was): what follows a receipt happens once.
SELECT id FROM core.referral
WHERE id = ANY(sqlc.arg(ids)::uuid[]) AND xmin = pg_current_xact_id()::xid;

-- name: ReferralMarkReceived :exec
-- The receipts of these referrals' requests came back applied: they were
-- received, if each receipt came from the node the referral went to.
UPDATE core.referral r
SET status = 'received', received_at = now(), updated_at = now()
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(froms)::text[]) AS from_node) AS u
WHERE r.id = u.id AND r.to_agency = u.from_node AND r.status = 'requested';

-- name: ReferralMarkUndelivered :exec
-- The nodes these referrals went to refused their requests at the bus,
-- for these reasons.
UPDATE core.referral r
SET delivery_error = u.reason, updated_at = now()
FROM (SELECT unnest(sqlc.arg(ids)::uuid[]) AS id, unnest(sqlc.arg(froms)::text[]) AS from_node,
             unnest(sqlc.arg(reasons)::text[]) AS reason) AS u
WHERE r.id = u.id AND r.to_agency = u.from_node AND r.status = 'requested';

-- name: ReferralGet :one
SELECT * FROM core.referral WHERE id = $1;

-- name: ReferralListIncoming :many
-- The referrals this node received, for one of its organizations or (a
-- NULL org) for any.
SELECT * FROM core.referral
WHERE to_agency = sqlc.arg(agency) AND (sqlc.narg(org)::text IS NULL OR to_org = sqlc.narg(org))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: ReferralListOutgoing :many
SELECT * FROM core.referral
WHERE from_agency = sqlc.arg(agency) AND (sqlc.narg(org)::text IS NULL OR from_org = sqlc.narg(org))
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(max_rows);

-- name: ReferralGetForUpdate :one
SELECT * FROM core.referral WHERE id = $1 FOR UPDATE;

-- name: ReferralMove :exec
-- action_due is the deadline of this node's next move (NULL: none).
UPDATE core.referral
SET status = $2, seq_out = $3, seq_in = $4, reason_code = $5, reason = $6, outcome = $7,
    forwarded_to = $8, forwarded_agency = $9, forwarded_org = $10, action_due = $11, updated_at = now()
WHERE id = $1;

-- name: ReferralListByCase :many
SELECT * FROM core.referral WHERE case_id = $1 ORDER BY created_at, id;

-- name: HistoryInsert :exec
INSERT INTO core.referral_history (referral_id, case_id, agency, move, status, reason_code, reason, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: HistoryByCase :many
SELECT * FROM core.referral_history WHERE case_id = $1 ORDER BY id;

-- name: ReferralOpenCaseOfPerson :one
-- The case of the newest referral about a person that has not ended.
SELECT case_id FROM core.referral
WHERE person_key = $1 AND person_key <> ''
  AND status NOT IN ('declined', 'completed', 'failed', 'cancelled', 'forwarded')
ORDER BY created_at DESC
LIMIT 1;

-- name: ReferralMarkDelivered :exec
-- The receiver moved a referral whose receipt has not come back yet: the
-- move proves it was received, no later than the move was made.
UPDATE core.referral SET received_at = coalesce(received_at, sqlc.arg(at)::timestamptz) WHERE id = sqlc.arg(id);

-- name: ReferralCasesOfPerson :many
-- The other cases this node holds about the person with key, in the
-- referrals organization org sent or received ('' for the node's).
SELECT DISTINCT case_id FROM core.referral
WHERE person_key = sqlc.arg(person_key)::text AND person_key <> '' AND case_id <> sqlc.arg(case_id)::uuid
  AND (sqlc.arg(org)::text = ''
       OR (to_agency = sqlc.arg(self)::text AND to_org = sqlc.arg(org)::text)
       OR (from_agency = sqlc.arg(self)::text AND from_org = sqlc.arg(org)::text))
ORDER BY case_id;
