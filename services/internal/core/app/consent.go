package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// Consent is what a family agreed this node may share.
type Consent struct {
	ID             uuid.UUID  `json:"id"`
	GivenBy        string     `json:"given_by" doc:"Who consented: the person or their legal representative. Stays in this node."`
	ToAgency       string     `json:"to_agency" doc:"The node the data may go to: the one that hosts to_org."`
	ToOrg          string     `json:"to_org" doc:"The organization the data may go to."`
	Purpose        string     `json:"purpose"`
	DataCategories []string   `json:"data_categories"`
	ExpiresAt      time.Time  `json:"expires_at"`
	RecordedAt     time.Time  `json:"recorded_at"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	RevokeReason   string     `json:"revoke_reason,omitempty"`
}

func consentFromDB(c coredb.Consent) Consent {
	return Consent{
		ID: c.ID, GivenBy: c.GivenBy, ToAgency: c.ToAgency, ToOrg: c.ToOrg, Purpose: c.Purpose, DataCategories: c.DataCategories,
		ExpiresAt: c.ExpiresAt, RecordedAt: c.RecordedAt, RevokedAt: c.RevokedAt, RevokeReason: c.RevokeReason,
	}
}

// NewConsent is a consent as a caseworker records it.
type NewConsent struct {
	GivenBy  string
	PersonID string // optional: only its keyed pseudonym is kept
	// ToOrg is the organization of another node the family agrees to
	// share with, as the directory lists it.
	ToOrg          string
	Purpose        string
	DataCategories []string
	ExpiresAt      time.Time
}

// RecordConsent keeps a consent. Returns ErrInvalid if it is for an
// organization of this node, for one not in the directory, names an
// unknown category, or has already expired.
func (a *App) RecordConsent(ctx context.Context, in NewConsent) (Consent, error) {
	to, err := a.organization(ctx, "to_org", in.ToOrg)
	if err != nil {
		return Consent{}, err
	}
	if strings.TrimSpace(in.GivenBy) == "" || strings.TrimSpace(in.Purpose) == "" {
		return Consent{}, fmt.Errorf("%w: given_by and purpose are required", ErrInvalid)
	}
	if len(in.DataCategories) == 0 {
		return Consent{}, fmt.Errorf("%w: data_categories: name at least one of %s", ErrInvalid, strings.Join(schemas.Categories(), ", "))
	}
	for _, c := range in.DataCategories {
		if !slices.Contains(schemas.Categories(), c) {
			return Consent{}, fmt.Errorf("%w: data category %q is not one of %s", ErrInvalid, c, strings.Join(schemas.Categories(), ", "))
		}
	}
	now := a.cfg.Now().UTC().Truncate(time.Microsecond)
	if !in.ExpiresAt.After(now) {
		return Consent{}, fmt.Errorf("%w: expires_at %s is not in the future", ErrInvalid, in.ExpiresAt.Format(time.RFC3339))
	}
	key, err := a.personKey(in.PersonID)
	if err != nil {
		return Consent{}, err
	}
	cats := slices.Clone(in.DataCategories)
	slices.Sort(cats)
	c, err := coredb.New(a.pool).ConsentInsert(ctx, coredb.ConsentInsertParams{
		ID: uuid.Must(uuid.NewV7()), GivenBy: in.GivenBy, PersonKey: string(key), ToAgency: to.Node, ToOrg: in.ToOrg, Purpose: in.Purpose,
		DataCategories: slices.Compact(cats), ExpiresAt: in.ExpiresAt.UTC(), RecordedAt: now,
	})
	if err != nil {
		return Consent{}, fmt.Errorf("record consent: %w", err)
	}
	a.consents.put(c)
	return consentFromDB(c), nil
}

// ConsentByID returns one consent. Returns ErrNotFound if there is none.
func (a *App) ConsentByID(ctx context.Context, id uuid.UUID) (Consent, error) {
	c, err := coredb.New(a.pool).ConsentGet(ctx, id)
	if isNoRows(err) {
		return Consent{}, fmt.Errorf("%w: no consent %s at %s", ErrNotFound, id, a.self)
	}
	if err != nil {
		return Consent{}, fmt.Errorf("get consent: %w", err)
	}
	return consentFromDB(c), nil
}

// Consents lists the consents this node recorded, newest first.
func (a *App) Consents(ctx context.Context, limit int) ([]Consent, error) {
	cs, err := coredb.New(a.pool).ConsentList(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return mapSlice(cs, consentFromDB), nil
}

// checkConsent says why the consent id does not allow sharing categories
// with organization org for a person, or returns it. Returns ErrInvalid.
func (a *App) checkConsent(ctx context.Context, id uuid.UUID, org string, key person.Key, categories []string) (coredb.Consent, error) {
	if id == uuid.Nil {
		return coredb.Consent{}, fmt.Errorf("%w: consent_id is required: record the family's consent to share with %s first (POST /api/v1/consents)", ErrInvalid, org)
	}
	c, ok := a.consents.get(id)
	if !ok {
		var err error
		c, err = coredb.New(a.pool).ConsentGet(ctx, id)
		if isNoRows(err) {
			return c, fmt.Errorf("%w: consent %s is not recorded at %s", ErrInvalid, id, a.self)
		}
		if err != nil {
			return c, fmt.Errorf("read consent: %w", err)
		}
		a.consents.put(c)
	}
	switch now := a.cfg.Now(); {
	case c.RevokedAt != nil:
		return c, fmt.Errorf("%w: consent %s was revoked on %s: the family no longer agrees to share", ErrInvalid, id, c.RevokedAt.UTC().Format(time.RFC3339))
	case !c.ExpiresAt.After(now):
		return c, fmt.Errorf("%w: consent %s expired on %s: record the family's consent again", ErrInvalid, id, c.ExpiresAt.UTC().Format(time.RFC3339))
	case c.ToOrg != org:
		return c, fmt.Errorf("%w: consent %s allows sharing with %s, not with %s", ErrInvalid, id, c.ToOrg, org)
	case c.PersonKey != "" && key != "" && c.PersonKey != string(key):
		return c, fmt.Errorf("%w: consent %s was given for another person", ErrInvalid, id)
	}
	for _, cat := range categories {
		if !slices.Contains(c.DataCategories, cat) {
			return c, fmt.Errorf("%w: consent %s does not cover the data category %q this referral shares (it covers %s)", ErrInvalid, id, cat, strings.Join(c.DataCategories, ", "))
		}
	}
	return c, nil
}

// consentGone explains why the transaction of a referral under consent id
// failed in consent_hold: it reads the consent again, past the cache.
func (a *App) consentGone(ctx context.Context, id uuid.UUID, org string, key person.Key, categories []string, what string) error {
	a.consents.drop(id)
	if _, err := a.checkConsent(ctx, id, org, key, categories); err != nil {
		return err
	}
	return fmt.Errorf("%w: consent %s was revoked or expired while the referral was %s", ErrInvalid, id, what)
}

// consentCache keeps the consents this service recorded or read, so that
// the check before a referral costs no round trip when the consent was
// just recorded, as a caseworker does. Only what never changes in a
// consent is trusted from it (whom, for what, until when): revocation is
// checked in the referral's own transaction (consent_hold), where it
// counts, and a failure there reads the consent again (consentGone).
type consentCache struct {
	mu sync.Mutex
	m  map[uuid.UUID]coredb.Consent
}

// maxCachedConsents bounds the cache; when full it starts again empty.
const maxCachedConsents = 1 << 16

func (c *consentCache) get(id uuid.UUID) (coredb.Consent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x, ok := c.m[id]
	return x, ok
}

func (c *consentCache) put(x coredb.Consent) {
	if x.RevokedAt != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedConsents {
		c.m = make(map[uuid.UUID]coredb.Consent)
	}
	c.m[x.ID] = x
}

func (c *consentCache) drop(id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// errConsentGone reports whether err is consent_hold failing: the consent
// was revoked or expired between the check and the commit.
func errConsentGone(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "RB001"
}

// RevokeConsent withdraws a consent: every referral sent under it that has
// not ended is cancelled, and the receiver of every referral sent under it
// is told, so it stops and redacts what was shared. Returns ErrNotFound,
// or ErrConflict if it was already revoked.
func (a *App) RevokeConsent(ctx context.Context, id uuid.UUID, reason string) (Consent, error) {
	if strings.TrimSpace(reason) == "" {
		return Consent{}, fmt.Errorf("%w: reason is required", ErrInvalid)
	}
	var out coredb.Consent
	defer a.consents.drop(id) // after the revocation commits, so no check caches it unrevoked
	err := a.inTx(ctx, func(q *coredb.Queries, tx pgx.Tx) error {
		c, err := q.ConsentGetForUpdate(ctx, id)
		if isNoRows(err) {
			return fmt.Errorf("%w: no consent %s at %s", ErrNotFound, id, a.self)
		}
		if err != nil {
			return fmt.Errorf("read consent: %w", err)
		}
		if c.RevokedAt != nil {
			return fmt.Errorf("%w: consent %s was already revoked on %s", ErrConflict, id, c.RevokedAt.UTC().Format(time.RFC3339))
		}
		now := a.cfg.Now().UTC().Truncate(time.Microsecond)
		if out, err = q.ConsentRevoke(ctx, coredb.ConsentRevokeParams{ID: id, At: &now, Reason: reason}); err != nil {
			return fmt.Errorf("revoke consent: %w", err)
		}
		rs, err := q.ReferralListByConsent(ctx, coredb.ReferralListByConsentParams{ConsentID: &id, Agency: a.self})
		if err != nil {
			return fmt.Errorf("list referrals under consent: %w", err)
		}
		var msgs []outbox.Message
		for _, r := range rs {
			if !referral.State(r.Status).Terminal() {
				m, err := a.moveTx(ctx, q, tx, r, referral.Cancel, MoveInput{Reason: "consent revoked: " + reason}, SLA{})
				if err != nil {
					return err
				}
				msgs = append(msgs, m...)
			}
			m, err := a.notice(r.ToAgency, schemas.TypeConsentRevoked, r.ID, r.CaseID, r.Traceparent, schemas.ConsentRevoked{ConsentID: id, RevokedAt: now})
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
			if err := q.ReferralMarkConsentRevoked(ctx, coredb.ReferralMarkConsentRevokedParams{ID: r.ID, At: &now}); err != nil {
				return fmt.Errorf("mark referral: %w", err)
			}
		}
		return a.out.Enqueue(ctx, tx, msgs...)
	})
	if err != nil {
		if known(err) {
			return Consent{}, err
		}
		return Consent{}, fmt.Errorf("revoke consent: %w", err)
	}
	a.compactSoon() // the destroyed keys' old row versions go too
	return consentFromDB(out), nil
}

// applyRevoked redacts a referral this node received once its sender
// says the consent is gone; its status and history stay.
func (a *App) applyRevoked(ctx context.Context, q *coredb.Queries, e *ce.Event) (error, error) {
	var d schemas.ConsentRevoked
	if err := event.Data(e, &d); err != nil {
		return inbox.Reject("%v", err), nil
	}
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject()), nil
	}
	r, err := q.ReferralGetForUpdate(ctx, id)
	if isNoRows(err) {
		return inbox.Reject("%s has no referral %s whose consent could be revoked", a.self, id), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read referral: %w", err)
	}
	if from, _ := bus.NodeOf(e.Source()); from != r.FromAgency || r.ToAgency != a.self {
		return inbox.Reject("only %s, which sent referral %s, can revoke its consent, not %s", r.FromAgency, id, from), nil
	}
	if r.ConsentID == nil || *r.ConsentID != d.ConsentID {
		return inbox.Reject("referral %s was not made under consent %s", id, d.ConsentID), nil
	}
	at := d.RevokedAt
	if err := q.ReferralRedact(ctx, coredb.ReferralRedactParams{ID: id, At: &at}); err != nil {
		return nil, fmt.Errorf("redact referral: %w", err)
	}
	a.compactSoon()
	return nil, nil
}
