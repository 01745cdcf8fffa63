package agency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"

	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/db"
)

// Event types this service sends and receives.
const (
	TypeRequested = "org.refbus.referral.requested.v1"
)

// Errors the API turns into problems.
var (
	// ErrNotFound: no referral with that id in this agency's store.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is wrong; the message says how.
	ErrInvalid = errors.New("invalid request")
)

// Referral is one agency's view of a referral.
type Referral struct {
	ID              uuid.UUID  `json:"id"`
	CaseID          uuid.UUID  `json:"case_id"`
	FromAgency      string     `json:"from_agency"`
	ToAgency        string     `json:"to_agency"`
	Service         string     `json:"service"`
	Note            string     `json:"note"`
	Status          string     `json:"status" doc:"requested until the receiving agency's receipt comes back, then received, accepted, declined, in_progress, on_hold, completed, failed, cancelled or forwarded"`
	ReasonCode      string     `json:"reason_code,omitempty" doc:"why it was declined"`
	Reason          string     `json:"reason,omitempty" doc:"why it was declined, held, failed or cancelled"`
	Outcome         string     `json:"outcome,omitempty" doc:"what came of it, once completed"`
	ParentID        *uuid.UUID `json:"parent_id,omitempty" doc:"the referral this one was forwarded from"`
	ForwardedTo     *uuid.UUID `json:"forwarded_to,omitempty" doc:"the referral that carries the work on, once forwarded"`
	ForwardedAgency string     `json:"forwarded_agency,omitempty" doc:"the agency it was forwarded to"`
	DeliveryError   string     `json:"delivery_error,omitempty" doc:"why the receiving agency refused the referral at the bus, if it did"`
	Overdue         bool       `json:"overdue,omitempty" doc:"a deadline of the referral passed (acceptance or completion, by its service)"`
	ConsentID       *uuid.UUID `json:"consent_id,omitempty" doc:"the family's consent the referral was made under"`
	ConsentRevoked  bool       `json:"consent_revoked,omitempty" doc:"the family revoked that consent: the referral is cancelled, and its receiver redacted what was shared"`
	Redacted        bool       `json:"redacted,omitempty" doc:"the shared data (note, person key, work) was erased when the consent was revoked"`
	Work            *Work      `json:"work,omitempty" doc:"the work records the referral's events carried, either way: a screening, an assessment and learning plan, a benefit decision, a shelter placement"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func referralFromDB(r db.Referral) Referral {
	return Referral{
		ID: r.ID, CaseID: r.CaseID, FromAgency: r.FromAgency, ToAgency: r.ToAgency,
		Service: r.Service, Note: r.Note, Status: r.Status, DeliveryError: r.DeliveryError,
		ReasonCode: r.ReasonCode, Reason: r.Reason, Outcome: r.Outcome, ParentID: r.ParentID,
		ForwardedTo: r.ForwardedTo, ForwardedAgency: r.ForwardedAgency, Overdue: r.OverdueAt != nil,
		ConsentID: r.ConsentID, ConsentRevoked: r.ConsentRevokedAt != nil, Redacted: r.RedactedAt != nil, Work: workFromDB(r.Work),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// NewReferral is what a sending agency asks for.
type NewReferral struct {
	ToAgency string
	Service  string
	Note     string
	// CaseID joins an existing case; zero joins the open case of the
	// person, if any, or starts a new one.
	CaseID uuid.UUID
	// PersonID is the Kazakh IIN or Kyrgyz PIN of the person referred,
	// optional. It never leaves this call: only its keyed pseudonym is
	// stored and sent.
	PersonID string
	// ConsentID names the family's consent to share with ToAgency
	// (RecordConsent); required.
	ConsentID uuid.UUID
	// Work is this agency's own work the receiver needs (health's
	// screening), optional.
	Work *Work
}

// requestedData is the data of a referral.requested event.
type requestedData struct {
	ToAgency  string       `json:"to_agency"`
	Service   string       `json:"service"`
	Note      string       `json:"note"`
	ParentID  *uuid.UUID   `json:"parent_id,omitempty"`
	PersonKey string       `json:"person_key,omitempty"`
	Consent   *consentData `json:"consent,omitempty"`
	Work      *Work        `json:"work,omitempty"`
}

// CreateReferral records a referral and queues its event in one
// transaction. Returns ErrInvalid when the request is wrong.
func (s *Service) CreateReferral(ctx context.Context, in NewReferral) (Referral, error) {
	if in.ToAgency == s.self {
		return Referral{}, fmt.Errorf("%w: to_agency is %s, this agency itself: refer to another agency (%s)", ErrInvalid, s.self, strings.Join(s.others(), ", "))
	}
	if !bus.KnownAgency(in.ToAgency) {
		return Referral{}, fmt.Errorf("%w: to_agency %q is not an agency of the network: use one of %s", ErrInvalid, in.ToAgency, strings.Join(s.others(), ", "))
	}
	key, err := s.personKey(in.PersonID)
	if err != nil {
		return Referral{}, err
	}
	if in.Work != nil {
		if err := in.Work.check(s.self); err != nil {
			return Referral{}, err
		}
		if in.Work.Placement != nil {
			return Referral{}, fmt.Errorf("%w: a placement is made when a shelter accepts a referral, not with a new one", ErrInvalid)
		}
	}
	if err := s.checkOffered(ctx, in.ToAgency, in.Service); err != nil {
		return Referral{}, err
	}
	consent, err := s.checkConsent(ctx, in.ConsentID, in.ToAgency, key, append(sharedCategories(key), in.Work.categories()...))
	if err != nil {
		return Referral{}, err
	}
	id := uuid.Must(uuid.NewV7())
	if in.CaseID == uuid.Nil {
		var err error
		if in.CaseID, err = s.caseOfPerson(ctx, key); err != nil {
			return Referral{}, fmt.Errorf("create referral: %w", err)
		}
	}
	// The referral, its history line and its event are written in one
	// transaction, grouped with other creations (commit.go).
	now := time.Now().UTC().Truncate(time.Microsecond)
	r, err := s.prepareReferral(id, in, nil, newTraceparent(), key, consent, now)
	if err != nil {
		return Referral{}, err
	}
	err = s.commit(ctx, r)
	if errors.Is(err, ErrInvalid) {
		return Referral{}, err
	}
	if errConsentGone(err) {
		return Referral{}, s.consentGone(ctx, in.ConsentID, in.ToAgency, key, append(sharedCategories(key), in.Work.categories()...), "made")
	}
	if err != nil {
		return Referral{}, fmt.Errorf("create referral: %w", err)
	}
	return Referral{
		ID: id, CaseID: in.CaseID, FromAgency: s.self, ToAgency: in.ToAgency, Service: in.Service, Note: in.Note,
		Status: string(referral.Requested), ConsentID: &consent.ID, Work: in.Work, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// newReferral is an outgoing referral ready to be written, with its event.
type newReferral struct {
	row     db.Referral
	consent db.Consent
	work    *Work
	msg     outbox.Message
}

// prepareReferral builds a new outgoing referral and its requested event.
func (s *Service) prepareReferral(id uuid.UUID, in NewReferral, parent *uuid.UUID, traceparent string, key person.Key, consent db.Consent, now time.Time) (newReferral, error) {
	cd := &consentData{ID: consent.ID, Purpose: consent.Purpose, DataCategories: consent.DataCategories, ExpiresAt: consent.ExpiresAt.UTC()}
	// Enqueue validates it, with the rest of its group (commit.go).
	ev, err := s.registry.Build(bus.Source(s.self), TypeRequested, id.String(), requestedData{ToAgency: in.ToAgency, Service: in.Service, Note: in.Note, ParentID: parent, PersonKey: string(key), Consent: cd, Work: in.Work})
	if err != nil {
		if errors.Is(err, event.ErrInvalid) {
			return newReferral{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return newReferral{}, err
	}
	ev.SetExtension(event.ExtCaseID, in.CaseID.String())
	ev.SetExtension(event.ExtTraceparent, traceparent)
	event.SetSequence(ev, 1)
	return newReferral{
		row: db.Referral{
			ID: id, CaseID: in.CaseID, FromAgency: s.self, ToAgency: in.ToAgency, Service: in.Service, Note: in.Note,
			ParentID: parent, Traceparent: traceparent, PersonKey: string(key), CreatedAt: now,
		},
		consent: consent,
		work:    in.Work,
		msg:     outbox.Message{To: in.ToAgency, Event: ev},
	}, nil
}

// writeReferrals writes new outgoing referrals set-wise, one statement per
// kind of row whatever their number, and returns their events for the
// caller to enqueue in the same transaction.
func (s *Service) writeReferrals(ctx context.Context, q *db.Queries, rs []newReferral) ([]outbox.Message, error) {
	var p db.ReferralInsertParams
	var timers db.SLATimerSetParams
	hold := db.ConsentHoldParams{At: s.cfg.Now()}
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
		hold.ConsentIds = append(hold.ConsentIds, r.consent.ID)
		if d := s.sla(r.row.Service).Accept; d > 0 {
			timers.ReferralIds = append(timers.ReferralIds, r.row.ID)
			timers.Kinds = append(timers.Kinds, "accept")
			timers.DueAts = append(timers.DueAts, hold.At.Add(d))
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
		if err := s.recordWork(ctx, q, r.row, r.work); err != nil {
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
func (s *Service) personKey(id string) (person.Key, error) {
	if id == "" {
		return "", nil
	}
	if s.keyer == nil {
		return "", fmt.Errorf("%w: person_id given, but this agency has no network key configured (REFBUS_NETWORK_KEY): ask its operators", ErrInvalid)
	}
	pid, err := person.ParseAny(id)
	if err != nil {
		return "", fmt.Errorf("%w: person_id: %v", ErrInvalid, err)
	}
	return s.keyer.Key(pid), nil
}

// sharedCategories are the data categories a referral shares besides its
// work records.
func sharedCategories(key person.Key) []string {
	cats := []string{CategorySummary}
	if key != "" {
		cats = append(cats, CategoryIdentity)
	}
	return cats
}

// caseOfPerson finds the open case of the person with key: first among
// this agency's own referrals, then in the network's case index. Without
// one, it starts a new case and records it in the index.
func (s *Service) caseOfPerson(ctx context.Context, key person.Key) (uuid.UUID, error) {
	if key == "" {
		return uuid.Must(uuid.NewV7()), nil
	}
	id, err := db.New(s.pool).ReferralOpenCaseOfPerson(ctx, string(key))
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, fmt.Errorf("find case of person: %w", err)
	}
	for range 3 {
		e, err := s.cases.Get(ctx, string(key))
		if err == nil {
			return uuid.Parse(string(e.Value()))
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return uuid.Nil, fmt.Errorf("read case index: %w", err)
		}
		id := uuid.Must(uuid.NewV7())
		if _, err := s.cases.Create(ctx, string(key), []byte(id.String())); err == nil {
			return id, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return uuid.Nil, fmt.Errorf("write case index: %w", err)
		}
		// Another agency started the case at the same moment: read it.
	}
	return uuid.Nil, errors.New("case index: no stable answer after 3 tries")
}

// Referral returns one referral this agency sent or received. Returns
// ErrNotFound if there is none with that id.
func (s *Service) Referral(ctx context.Context, id uuid.UUID) (Referral, error) {
	r, err := db.New(s.pool).ReferralGet(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Referral{}, fmt.Errorf("%w: no referral %s at %s", ErrNotFound, id, s.self)
	}
	if err != nil {
		return Referral{}, fmt.Errorf("get referral: %w", err)
	}
	return referralFromDB(r), nil
}

// Inbox lists the referrals this agency received, newest first.
func (s *Service) Inbox(ctx context.Context, limit int) ([]Referral, error) {
	rs, err := db.New(s.pool).ReferralListIncoming(ctx, db.ReferralListIncomingParams{Agency: s.self, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list inbox: %w", err)
	}
	return mapSlice(rs, referralFromDB), nil
}

// Sent lists the referrals this agency sent, newest first.
func (s *Service) Sent(ctx context.Context, limit int) ([]Referral, error) {
	rs, err := db.New(s.pool).ReferralListOutgoing(ctx, db.ReferralListOutgoingParams{Agency: s.self, MaxRows: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("list sent: %w", err)
	}
	return mapSlice(rs, referralFromDB), nil
}

func (s *Service) others() []string {
	var out []string
	for _, a := range bus.Agencies {
		if a != s.self {
			out = append(out, a)
		}
	}
	return out
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

// newTraceparent starts a W3C trace for a new chain of help.
func newTraceparent() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// Rejection is an event this agency refused, with the reason.
type Rejection struct {
	Source     string    `json:"source" doc:"Who sent it (empty if the message could not be read at all)."`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type,omitempty"`
	Subject    string    `json:"subject" doc:"The NATS subject it came on."`
	StreamSeq  int64     `json:"stream_seq" doc:"Where it is in the REFERRALS stream."`
	Reason     string    `json:"reason"`
	ReceivedAt time.Time `json:"received_at"`
}

// Rejections lists the events this agency refused, newest first.
func (s *Service) Rejections(ctx context.Context, limit int) ([]Rejection, error) {
	rs, err := db.New(s.pool).InboxRejected(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("list rejections: %w", err)
	}
	return mapSlice(rs, func(r db.InboxRejectedRow) Rejection {
		return Rejection{Source: r.Source, EventID: r.EventID, EventType: r.EventType, Subject: r.Subject, StreamSeq: r.StreamSeq, Reason: r.Reason, ReceivedAt: r.ReceivedAt}
	}), nil
}
