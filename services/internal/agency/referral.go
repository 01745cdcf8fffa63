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

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/outbox"
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
	ID            uuid.UUID `json:"id"`
	CaseID        uuid.UUID `json:"case_id"`
	FromAgency    string    `json:"from_agency"`
	ToAgency      string    `json:"to_agency"`
	Service       string    `json:"service"`
	Note          string    `json:"note"`
	Status        string    `json:"status" doc:"requested until the receiving agency's receipt comes back, then received"`
	DeliveryError string    `json:"delivery_error,omitempty" doc:"why the receiving agency refused the referral at the bus, if it did"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func referralFromDB(r db.Referral) Referral {
	return Referral{
		ID: r.ID, CaseID: r.CaseID, FromAgency: r.FromAgency, ToAgency: r.ToAgency,
		Service: r.Service, Note: r.Note, Status: r.Status, DeliveryError: r.DeliveryError,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

// NewReferral is what a sending agency asks for.
type NewReferral struct {
	ToAgency string
	Service  string
	Note     string
	// CaseID joins an existing case; zero starts a new one.
	CaseID uuid.UUID
}

// requestedData is the data of a referral.requested event.
type requestedData struct {
	ToAgency string `json:"to_agency"`
	Service  string `json:"service"`
	Note     string `json:"note"`
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
	id, caseID := uuid.Must(uuid.NewV7()), in.CaseID
	if caseID == uuid.Nil {
		caseID = uuid.Must(uuid.NewV7())
	}
	ev, err := s.registry.New(bus.Source(s.self), TypeRequested, id.String(), requestedData{ToAgency: in.ToAgency, Service: in.Service, Note: in.Note})
	if err != nil {
		if errors.Is(err, event.ErrInvalid) {
			return Referral{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return Referral{}, fmt.Errorf("create referral: %w", err)
	}
	ev.SetExtension(event.ExtCaseID, caseID.String())
	ev.SetExtension(event.ExtTraceparent, newTraceparent())
	event.SetSequence(ev, 1)
	err = s.inTx(ctx, func(q *db.Queries, tx pgx.Tx) error {
		if err := q.ReferralInsert(ctx, db.ReferralInsertParams{
			ID: id, CaseID: caseID, FromAgency: s.self, ToAgency: in.ToAgency, Service: in.Service, Note: in.Note,
		}); err != nil {
			return fmt.Errorf("insert referral: %w", err)
		}
		return s.out.Enqueue(ctx, tx, outbox.Message{To: in.ToAgency, Event: ev})
	})
	if err != nil {
		return Referral{}, fmt.Errorf("create referral: %w", err)
	}
	return s.Referral(ctx, id)
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
