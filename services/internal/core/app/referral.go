package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Referral is one node's view of a referral.
type Referral struct {
	ID              uuid.UUID  `json:"id"`
	CaseID          uuid.UUID  `json:"case_id"`
	FromAgency      string     `json:"from_agency" doc:"The node that sent it."`
	ToAgency        string     `json:"to_agency" doc:"The node it was sent to."`
	FromOrg         string     `json:"from_org" doc:"The organization that sent it, hosted by from_agency."`
	ToOrg           string     `json:"to_org" doc:"The organization it was sent to, hosted by to_agency."`
	FromOrgName     string     `json:"from_org_name,omitempty" doc:"The sending organization's name, as the directory lists it."`
	ToOrgName       string     `json:"to_org_name,omitempty" doc:"The receiving organization's name, as the directory lists it."`
	Service         string     `json:"service"`
	Note            string     `json:"note"`
	Status          string     `json:"status" doc:"requested until the receiving node's receipt comes back, then received, accepted, declined, in_progress, on_hold, completed, failed, cancelled or forwarded"`
	ReasonCode      string     `json:"reason_code,omitempty" doc:"why it was declined"`
	Reason          string     `json:"reason,omitempty" doc:"why it was declined, held, failed or cancelled"`
	Outcome         string     `json:"outcome,omitempty" doc:"what came of it, once completed"`
	ParentID        *uuid.UUID `json:"parent_id,omitempty" doc:"the referral this one was forwarded from"`
	ForwardedTo     *uuid.UUID `json:"forwarded_to,omitempty" doc:"the referral that carries the work on, once forwarded"`
	ForwardedAgency string     `json:"forwarded_agency,omitempty" doc:"the node it was forwarded to"`
	ForwardedOrg    string     `json:"forwarded_org,omitempty" doc:"the organization it was forwarded to"`
	DeliveryError   string     `json:"delivery_error,omitempty" doc:"why the receiving node refused the referral at the bus, if it did"`
	Overdue         bool       `json:"overdue,omitempty" doc:"a deadline of the referral passed (acceptance or completion, by its service)"`
	ConsentID       *uuid.UUID `json:"consent_id,omitempty" doc:"the family's consent the referral was made under"`
	ConsentRevoked  bool       `json:"consent_revoked,omitempty" doc:"the family revoked that consent: the referral is cancelled, and its receiver redacted what was shared"`
	Redacted        bool       `json:"redacted,omitempty" doc:"the shared data (note, person key, work) was erased when the consent was revoked or the person erased"`
	KeyDestroyed    bool       `json:"key_destroyed,omitempty" doc:"its data key was destroyed (consent revoked, person erased): its events on the stream can no longer be opened, and no move is made on it any more"`
	// SamePersonCases is filled when one referral is read.
	SamePersonCases []uuid.UUID   `json:"same_person_cases,omitempty" doc:"other cases this node holds about the same person (matched among this node's own referrals by person key): the family is already known here"`
	Work            *schemas.Work `json:"work,omitempty" doc:"the work records the referral's events carried, either way: a screening, an assessment and learning plan, a benefit decision, a shelter placement"`
	PersonKnown     bool          `json:"person_known,omitempty" doc:"it names its person, by the keyed pseudonym of a national id"`
	CaseNumber      string        `json:"case_number" doc:"the case's number, as people say it: the same at every node of the case (the last 48 bits of case_id in Crockford's base32)"`
	Urgency         string        `json:"urgency" doc:"routine or urgent, as the referrer set it"`
	NeedsAction     bool          `json:"needs_action,omitempty" doc:"this node's organization has a move to make on it (a referral it received that has not ended)"`
	ActionDue       *time.Time    `json:"action_due,omitempty" doc:"the deadline of that move, if it has one: accept by the sender's deadline, then complete by the service's"`
	AssignedTo      string        `json:"assigned_to,omitempty" doc:"the user of the receiving organization it is assigned to"`
	Opened          bool          `json:"opened,omitempty" doc:"someone of the receiving organization opened it"`
	ConsentPurpose  string        `json:"consent_purpose,omitempty" doc:"what the family agreed to the sharing for"`
	ConsentExpires  *time.Time    `json:"consent_expires_at,omitempty" doc:"until when the consent holds"`
	CreatedAt       time.Time     `json:"created_at"`
	UpdatedAt       time.Time     `json:"updated_at"`
}

func referralFromDB(r coredb.Referral) Referral {
	return Referral{
		ID: r.ID, CaseID: r.CaseID, FromAgency: r.FromAgency, ToAgency: r.ToAgency, FromOrg: r.FromOrg, ToOrg: r.ToOrg,
		Service: r.Service, Note: r.Note, Status: r.Status, DeliveryError: r.DeliveryError,
		ReasonCode: r.ReasonCode, Reason: r.Reason, Outcome: r.Outcome, ParentID: r.ParentID,
		ForwardedTo: r.ForwardedTo, ForwardedAgency: r.ForwardedAgency, ForwardedOrg: r.ForwardedOrg, Overdue: r.OverdueAt != nil,
		ConsentID: r.ConsentID, ConsentRevoked: r.ConsentRevokedAt != nil, Redacted: r.RedactedAt != nil, KeyDestroyed: r.KeyDestroyedAt != nil, Work: workFromDB(r.Work),
		PersonKnown: r.PersonKey != "", CaseNumber: CaseNumber(r.CaseID), Urgency: r.Urgency, NeedsAction: r.ActionDue != nil, ActionDue: deadline(r.ActionDue),
		AssignedTo: r.AssignedTo, Opened: r.OpenedAt != nil, ConsentPurpose: r.ConsentPurpose, ConsentExpires: r.ConsentExpiresAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// named is r with the names of its organizations.
func (a *App) named(r Referral) Referral {
	r.FromOrgName, r.ToOrgName = a.OrgName(r.FromOrg), a.OrgName(r.ToOrg)
	return r
}

// referrals are rs as the request of ctx may see them, named.
func (a *App) referrals(ctx context.Context, rs []coredb.Referral) []Referral {
	out := make([]Referral, 0, len(rs))
	for _, r := range rs {
		if a.sees(ctx, r) {
			out = append(out, a.named(referralFromDB(r)))
		}
	}
	return out
}

// workFromDB decodes the work a referral's events carried.
func workFromDB(b []byte) *schemas.Work {
	if len(b) == 0 {
		return nil
	}
	var w schemas.Work
	if json.Unmarshal(b, &w) != nil {
		return nil
	}
	return &w
}

// NewReferral is what a sending node asks for.
type NewReferral struct {
	// ToOrg is the organization asked to help, of another node, as the
	// directory lists it; the referral goes to its node.
	ToOrg string
	// FromOrg is the organization of this node that refers: the
	// caller's (WithOrg), else the one given, else the node's first.
	FromOrg string
	Service string
	Note    string
	// Urgency is how soon the family needs the service: schemas.Urgent
	// or schemas.Routine; empty picks by the service's deadline
	// (DefaultUrgency).
	Urgency string
	// CaseID joins an existing case; zero joins the open case of the
	// person, if any, or starts a new one.
	CaseID uuid.UUID
	// PersonID is the Kazakh IIN or Kyrgyz PIN of the person referred,
	// optional. It never leaves this call: only its keyed pseudonym is
	// stored and sent.
	PersonID string
	// ConsentID names the family's consent to share with ToOrg
	// (RecordConsent); required.
	ConsentID uuid.UUID
	// Work is this node's own work the receiver needs (a screening),
	// optional.
	Work *schemas.Work

	// toNode is the node that hosts ToOrg, as the directory lists it.
	toNode string
}

// CreateReferral records a referral and queues its event in one
// transaction. Returns ErrInvalid when the request is wrong, ErrForbidden
// when the caller refers on behalf of another organization than its own.
func (a *App) CreateReferral(ctx context.Context, in NewReferral) (Referral, error) {
	var err error
	if in.FromOrg, err = a.senderOrg(ctx, in.FromOrg); err != nil {
		return Referral{}, err
	}
	key, err := a.personKey(in.PersonID)
	if err != nil {
		return Referral{}, err
	}
	if in.Work != nil {
		if in.Work.Placement != nil {
			return Referral{}, fmt.Errorf("%w: a placement is made when a shelter accepts a referral, not with a new one", ErrInvalid)
		}
		if err := a.checkWork(in.Work); err != nil {
			return Referral{}, err
		}
	}
	to, sla, err := a.offered(ctx, in.ToOrg, in.Service)
	if err != nil {
		return Referral{}, err
	}
	in.toNode = to.Node
	shared := append(sharedCategories(key), in.Work.Categories()...)
	consent, err := a.checkConsent(ctx, in.ConsentID, in.ToOrg, key, shared)
	if err != nil {
		return Referral{}, err
	}
	id := uuid.Must(uuid.NewV7())
	if in.CaseID == uuid.Nil {
		if in.CaseID, err = a.caseOfPerson(ctx, key); err != nil {
			return Referral{}, fmt.Errorf("create referral: %w", err)
		}
	}
	// The referral, its deadline and its event are written in one
	// transaction, grouped with other creations (commit.go).
	now := time.Now().UTC().Truncate(time.Microsecond)
	r, err := a.prepareReferral(ctx, id, in, nil, newTraceparent(), key, consent, sla, now)
	if err != nil {
		return Referral{}, err
	}
	err = a.commit(ctx, r)
	if errors.Is(err, ErrInvalid) {
		return Referral{}, err
	}
	if errConsentGone(err) {
		return Referral{}, a.consentGone(ctx, in.ConsentID, in.ToOrg, key, shared, "made")
	}
	if err != nil {
		return Referral{}, fmt.Errorf("create referral: %w", err)
	}
	return a.named(Referral{
		ID: id, CaseID: in.CaseID, FromAgency: a.self, ToAgency: in.toNode, FromOrg: in.FromOrg, ToOrg: in.ToOrg, Service: in.Service, Note: in.Note,
		Status: string(referral.Requested), ConsentID: &consent.ID, Work: in.Work, CreatedAt: now, UpdatedAt: now,
		CaseNumber: CaseNumber(in.CaseID), Urgency: r.row.Urgency, ConsentPurpose: consent.Purpose, ConsentExpires: &consent.ExpiresAt,
	}), nil
}

// newReferral is an outgoing referral ready to be written, with its event.
type newReferral struct {
	row     coredb.Referral
	consent coredb.Consent
	work    *schemas.Work
	sla     SLA
	msg     outbox.Message
}

// prepareReferral builds a new outgoing referral and its requested event,
// sealed under a new data key that travels wrapped to the receiving node.
func (a *App) prepareReferral(ctx context.Context, id uuid.UUID, in NewReferral, parent *uuid.UUID, traceparent string, key person.Key, consent coredb.Consent, sla SLA, now time.Time) (newReferral, error) {
	cd := &schemas.Consent{ID: consent.ID, Purpose: consent.Purpose, DataCategories: consent.DataCategories, ExpiresAt: consent.ExpiresAt.UTC()}
	// Enqueue validates it, with the rest of its group (commit.go).
	req := schemas.Requested{
		ToAgency: in.toNode, FromOrg: in.FromOrg, ToOrg: in.ToOrg, Service: in.Service, Note: in.Note, ParentID: parent, PersonKey: string(key), Consent: cd, Work: in.Work,
		Urgency: cmp.Or(in.Urgency, DefaultUrgency(sla)),
	}
	if sla.Accept > 0 {
		by := now.Add(sla.Accept)
		req.AcceptBy = &by
	}
	ev, err := a.registry.Build(bus.Source(a.self), schemas.TypeRequested, id.String(), req)
	if err != nil {
		if errors.Is(err, event.ErrInvalid) {
			return newReferral{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return newReferral{}, err
	}
	ev.SetExtension(event.ExtCaseID, in.CaseID.String())
	ev.SetExtension(event.ExtTraceparent, traceparent)
	event.SetSequence(ev, 1)
	dataKey, wrapped, err := a.NewDataKey(ctx, in.toNode, id)
	if err != nil {
		return newReferral{}, err
	}
	return newReferral{
		row: coredb.Referral{
			ID: id, CaseID: in.CaseID, FromAgency: a.self, ToAgency: in.toNode, FromOrg: in.FromOrg, ToOrg: in.ToOrg, Service: in.Service, Note: in.Note,
			ParentID: parent, Traceparent: traceparent, PersonKey: string(key), CreatedAt: now, DataKey: dataKey, Urgency: req.Urgency,
		},
		consent: consent,
		work:    in.Work,
		sla:     sla,
		msg:     outbox.Message{To: in.toNode, Event: ev, DataKey: dataKey, WrappedKey: wrapped},
	}, nil
}

// writeReferrals writes new outgoing referrals set-wise, one statement per
// kind of row whatever their number, and returns their events for the
// caller to enqueue in the same transaction.
func (a *App) writeReferrals(ctx context.Context, q *coredb.Queries, db kind.DB, rs []newReferral) ([]outbox.Message, error) {
	var p coredb.ReferralInsertParams
	var timers coredb.SLATimerSetParams
	hold := coredb.ConsentHoldParams{At: a.cfg.Now()}
	msgs := make([]outbox.Message, 0, len(rs))
	for _, r := range rs {
		parent := uuid.Nil
		if r.row.ParentID != nil {
			parent = *r.row.ParentID
		}
		p.Ids = append(p.Ids, r.row.ID)
		p.CaseIds = append(p.CaseIds, r.row.CaseID)
		p.FromAgencies = append(p.FromAgencies, r.row.FromAgency)
		p.ToAgencies = append(p.ToAgencies, r.row.ToAgency)
		p.FromOrgs = append(p.FromOrgs, r.row.FromOrg)
		p.ToOrgs = append(p.ToOrgs, r.row.ToOrg)
		p.Services = append(p.Services, r.row.Service)
		p.Notes = append(p.Notes, r.row.Note)
		p.ParentIds = append(p.ParentIds, parent)
		p.Traceparents = append(p.Traceparents, r.row.Traceparent)
		p.PersonKeys = append(p.PersonKeys, r.row.PersonKey)
		p.ConsentIds = append(p.ConsentIds, r.consent.ID)
		p.ConsentPurposes = append(p.ConsentPurposes, r.consent.Purpose)
		p.ConsentCategories = append(p.ConsentCategories, strings.Join(r.consent.DataCategories, ","))
		p.ConsentExpiries = append(p.ConsentExpiries, r.consent.ExpiresAt.UTC())
		p.CreatedAts = append(p.CreatedAts, r.row.CreatedAt)
		p.DataKeys = append(p.DataKeys, r.row.DataKey)
		p.Urgencies = append(p.Urgencies, r.row.Urgency)
		hold.ConsentIds = append(hold.ConsentIds, r.consent.ID)
		if r.sla.Accept > 0 {
			timers.ReferralIds = append(timers.ReferralIds, r.row.ID)
			timers.Kinds = append(timers.Kinds, "accept")
			timers.DueAts = append(timers.DueAts, hold.At.Add(r.sla.Accept))
		}
		msgs = append(msgs, r.msg)
	}
	// The consents are held for this transaction: one revoked meanwhile
	// fails it, and a revocation that comes later sees these referrals.
	if err := q.ConsentHold(ctx, hold); err != nil {
		return nil, err
	}
	if err := q.ReferralInsert(ctx, p); err != nil {
		return nil, fmt.Errorf("insert referral: %w", err)
	}
	for _, r := range rs {
		if err := a.recordWork(ctx, q, db, r.row, r.work); err != nil {
			return nil, err
		}
	}
	if len(timers.ReferralIds) > 0 {
		if err := q.SLATimerSet(ctx, timers); err != nil {
			return nil, fmt.Errorf("set accept deadline: %w", err)
		}
	}
	return msgs, nil
}

// personKey checks a national id and returns its keyed pseudonym; "" for
// none. Returns ErrInvalid.
func (a *App) personKey(id string) (person.Key, error) {
	if id == "" {
		return "", nil
	}
	if a.keyer == nil {
		return "", fmt.Errorf("%w: person_id given, but this node has no network key configured (REFBUS_NETWORK_KEY): ask its operators", ErrInvalid)
	}
	parse := person.ParseAny
	if c := a.cfg.Country; c != "" {
		parse = func(s string) (person.ID, error) { return person.Parse(c, s) }
	}
	pid, err := parse(id)
	if err != nil {
		return "", fmt.Errorf("%w: person_id: %v", ErrInvalid, err)
	}
	return a.keyer.Key(pid), nil
}

// sharedCategories are the data categories a referral shares besides its
// work records.
func sharedCategories(key person.Key) []string {
	cats := []string{schemas.CategorySummary}
	if key != "" {
		cats = append(cats, schemas.CategoryIdentity)
	}
	return cats
}

// caseOfPerson finds the open case of the person with key among this
// node's own referrals, either way: a family referred here, and referred
// on from here, stays one case. Without one, it starts a new case. There
// is no index of people across the network: a node that was never party
// to a person's case learns nothing of it (schemas/SEALING.md).
func (a *App) caseOfPerson(ctx context.Context, key person.Key) (uuid.UUID, error) {
	if key == "" {
		return uuid.Must(uuid.NewV7()), nil
	}
	id, err := coredb.New(a.pool).ReferralOpenCaseOfPerson(ctx, string(key))
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Must(uuid.NewV7()), nil
	}
	if err != nil {
		return uuid.Nil, fmt.Errorf("find case of person: %w", err)
	}
	return id, nil
}

// Referral returns one referral this node sent or received. Returns
// ErrNotFound if there is none with that id that the caller may see.
func (a *App) Referral(ctx context.Context, id uuid.UUID) (Referral, error) {
	r, err := coredb.New(a.pool).ReferralGet(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !a.sees(ctx, r)) {
		return Referral{}, fmt.Errorf("%w: no referral %s at %s", ErrNotFound, id, a.self)
	}
	if err != nil {
		return Referral{}, fmt.Errorf("get referral: %w", err)
	}
	out := a.named(referralFromDB(r))
	if r.PersonKey != "" {
		if out.SamePersonCases, err = coredb.New(a.pool).ReferralCasesOfPerson(ctx, coredb.ReferralCasesOfPersonParams{PersonKey: r.PersonKey, CaseID: r.CaseID, Org: OrgOf(ctx), Self: a.self}); err != nil {
			return Referral{}, fmt.Errorf("cases of the same person: %w", err)
		}
	}
	return out, nil
}

// Inbox lists the referrals this node received for organization org (""
// for all of the node's), newest first; a caller of one organization sees
// its own only. Returns ErrForbidden or ErrInvalid for another org.
func (a *App) Inbox(ctx context.Context, org string, limit int) ([]Referral, error) {
	o, err := a.listOrg(ctx, org)
	if err != nil {
		return nil, err
	}
	rs, err := coredb.New(a.pool).ReferralListIncoming(ctx, coredb.ReferralListIncomingParams{Agency: a.self, Org: o, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	return a.referrals(ctx, rs), nil
}

// Sent lists the referrals this node sent, as Inbox.
func (a *App) Sent(ctx context.Context, org string, limit int) ([]Referral, error) {
	o, err := a.listOrg(ctx, org)
	if err != nil {
		return nil, err
	}
	rs, err := coredb.New(a.pool).ReferralListOutgoing(ctx, coredb.ReferralListOutgoingParams{Agency: a.self, Org: o, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list sent: %w", err)
	}
	return a.referrals(ctx, rs), nil
}

// newTraceparent starts a W3C trace for a new chain of help.
func newTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}
