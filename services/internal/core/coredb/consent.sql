-- name: ConsentInsert :one
INSERT INTO core.consent (id, given_by, person_key, to_agency, to_org, purpose, data_categories, expires_at, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *;

-- name: ConsentGet :one
SELECT * FROM core.consent WHERE id = $1;

-- name: ConsentGetForUpdate :one
SELECT * FROM core.consent WHERE id = $1 FOR UPDATE;

-- name: ConsentList :many
SELECT * FROM core.consent ORDER BY recorded_at DESC, id DESC LIMIT $1;

-- name: ConsentRevoke :one
UPDATE core.consent SET revoked_at = sqlc.arg(at), revoke_reason = sqlc.arg(reason)
WHERE id = $1
RETURNING *;

-- name: ReferralListByConsent :many
-- The referrals this node sent under a consent, locked for the moves
-- its revocation makes.
SELECT * FROM core.referral
WHERE consent_id = $1 AND from_agency = sqlc.arg(agency)
ORDER BY created_at, id
FOR UPDATE;

-- name: ReferralRedact :exec
-- The consent a referral was received under was revoked: its shared data
-- goes, and its data key, so the stream's copies cannot be opened here
-- either; the referral, its status and its history stay as the audit
-- trail.
UPDATE core.referral
SET note = '', person_key = '', work = NULL, consent_purpose = '', consent_revoked_at = coalesce(consent_revoked_at, sqlc.arg(at)),
    redacted_at = coalesce(redacted_at, now()), updated_at = now(),
    data_key = NULL, key_destroyed_at = coalesce(key_destroyed_at, now())
WHERE id = $1;

-- name: ReferralMarkConsentRevoked :exec
-- The sender keeps what it wrote, but destroys the data key: the events
-- of the referral on the stream can no longer be opened.
UPDATE core.referral SET consent_revoked_at = coalesce(consent_revoked_at, sqlc.arg(at)), updated_at = now(),
    data_key = NULL, key_destroyed_at = coalesce(key_destroyed_at, now())
WHERE id = $1;

-- name: ConsentHold :exec
SELECT core.consent_hold_all(sqlc.arg(consent_ids)::uuid[], sqlc.arg(at)::timestamptz);

-- name: ReferralListByPerson :many
-- The referrals about a person, this node's either way, locked.
SELECT * FROM core.referral WHERE person_key = sqlc.arg(person_key)::text AND person_key <> '' ORDER BY created_at, id FOR UPDATE;

-- name: ReferralErase :exec
-- The person of these referrals was erased: everything about them goes,
-- with the data keys, so the stream's copies cannot be opened here
-- either; the referrals, their status and history stay as the audit
-- trail.
UPDATE core.referral
SET note = '', person_key = '', work = NULL, consent_purpose = '', reason = '', outcome = '',
    redacted_at = coalesce(redacted_at, now()), updated_at = now(),
    data_key = NULL, key_destroyed_at = coalesce(key_destroyed_at, now())
WHERE id = ANY(sqlc.arg(ids)::uuid[]);

-- name: HistoryErase :exec
-- The reasons and outcomes of erased referrals' moves go too.
UPDATE core.referral_history SET reason = '', outcome = '' WHERE referral_id = ANY(sqlc.arg(ids)::uuid[]);

-- name: DisclosureInsert :exec
INSERT INTO core.address_disclosure (id, case_id, referral_id, from_node, from_org, to_node, to_org, purpose, address, until)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO NOTHING;

-- name: DisclosureList :many
-- The disclosures made to, or by, this node's organization org ('' for
-- all of the node's) that have not expired, newest first.
SELECT * FROM core.address_disclosure
WHERE until > sqlc.arg(now)::timestamptz
  AND (sqlc.arg(org)::text = '' OR to_org = sqlc.arg(org)::text OR from_org = sqlc.arg(org)::text)
ORDER BY created_at DESC
LIMIT 100;

-- name: DisclosureDeleteExpired :execrows
DELETE FROM core.address_disclosure WHERE until <= sqlc.arg(now)::timestamptz;

-- name: ConsentErasePerson :exec
-- The person of these consents was erased: who consented, for what and
-- whom about go; the consents stay, so the referrals made under them
-- still name one.
UPDATE core.consent SET given_by = '', person_key = '', purpose = ''
WHERE person_key = sqlc.arg(person_key)::text AND person_key <> '';

-- name: DisclosureDeleteByReferral :exec
DELETE FROM core.address_disclosure WHERE referral_id = ANY(sqlc.arg(ids)::uuid[]);
