package agency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/db"
)

// More errors the API turns into problems.
var (
	// ErrConflict: the move is not allowed in the referral's state now.
	ErrConflict = errors.New("conflict")
	// ErrForbidden: this agency is not the party that may make the move.
	ErrForbidden = errors.New("forbidden")
)

// moveData is the data of every referral move event; each type's schema
// says which fields it needs.
type moveData struct {
	ReasonCode    string     `json:"reason_code,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Outcome       string     `json:"outcome,omitempty"`
	Note          string     `json:"note,omitempty"`
	NewReferralID *uuid.UUID `json:"new_referral_id,omitempty"`
	ToAgency      string     `json:"to_agency,omitempty"`
	Service       string     `json:"service,omitempty"`
	Work          *Work      `json:"work,omitempty"`
}

// moveOfType maps event types back to moves.
var moveOfType = func() map[string]referral.Move {
	m := map[string]referral.Move{}
	for _, mv := range referral.Moves() {
		if t := referral.EventType(mv); t != "" {
			m[t] = mv
		}
	}
	return m
}()

// MoveInput is what a caseworker gives with a move.
type MoveInput struct {
	ReasonCode string
	Reason     string
	Outcome    string
	Note       string
	// ToAgency and Service name the new referral of a forward, and
	// ConsentID the family's consent to share with ToAgency.
	ToAgency  string
	Service   string
	ConsentID uuid.UUID
	// Work is this agency's own work on the referral, told to the other
	// party: a placement when a shelter accepts (required there), an
	// assessment, learning plan, benefit decision or screening when the
	// work completes.
	Work *Work
}

// Move makes a move on a referral this agency is party to, and tells the
// other party. Returns ErrNotFound, ErrForbidden (not this agency's move),
// ErrConflict (not allowed now; the message lists what is) or ErrInvalid
// (missing reason or outcome).
func (s *Service) Move(ctx context.Context, id uuid.UUID, mv referral.Move, in MoveInput) (Referral, error) {
	if mv == referral.Forward {
		if in.ToAgency == s.self {
			return Referral{}, fmt.Errorf("%w: forward to another agency than %s", ErrInvalid, s.self)
		}
		if in.ToAgency != "" && !bus.KnownAgency(in.ToAgency) {
			return Referral{}, fmt.Errorf("%w: to_agency %q is not an agency of the network: use one of %s", ErrInvalid, in.ToAgency, strings.Join(s.others(), ", "))
		}
	}
	if in.Work != nil && mv != referral.Accept && mv != referral.Complete {
		return Referral{}, fmt.Errorf("%w: work is told with accept (a placement) or complete, not with %s", ErrInvalid, mv)
	}
	if in.Work != nil {
		if err := in.Work.check(s.self); err != nil {
			return Referral{}, err
		}
	}
	if mv == referral.Forward && in.ToAgency != "" {
		if err := s.checkOffered(ctx, in.ToAgency, in.Service); err != nil {
			return Referral{}, err
		}
	}
	err := s.inTx(ctx, func(q *db.Queries, tx pgx.Tx) error {
		r, err := q.ReferralGetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: no referral %s at %s", ErrNotFound, id, s.self)
		}
		if err != nil {
			return fmt.Errorf("read referral: %w", err)
		}
		msgs, err := s.moveTx(ctx, q, r, mv, in)
		if err != nil {
			return err
		}
		return s.enqueue(ctx, tx, msgs...)
	})
	if errConsentGone(err) {
		return Referral{}, s.consentGone(ctx, in.ConsentID, in.ToAgency, "", nil, "forwarded")
	}
	if err == nil {
		// A bed taken or freed shows in the directory at once.
		if err := s.publishDirectory(ctx); err != nil {
			s.log.Warn("directory", "err", err)
		}
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrForbidden) || errors.Is(err, ErrInvalid) {
			return Referral{}, err
		}
		return Referral{}, fmt.Errorf("%s referral: %w", mv, err)
	}
	return s.Referral(ctx, id)
}

// moveTx makes a move on r, locked by the caller, and returns the events
// to enqueue in the same transaction.
func (s *Service) moveTx(ctx context.Context, q *db.Queries, r db.Referral, mv referral.Move, in MoveInput) ([]outbox.Message, error) {
	if r.ToAgency == s.self && r.ConsentRevokedAt != nil {
		return nil, fmt.Errorf("%w: the family revoked its consent to referral %s on %s: it can no longer be worked on", ErrConflict, r.ID, r.ConsentRevokedAt.UTC().Format(time.RFC3339))
	}
	party, other := referral.Receiver, r.FromAgency
	if r.FromAgency == s.self {
		party, other = referral.Sender, r.ToAgency
	}
	next, err := referral.Apply(referral.State(r.Status), mv, party, referral.Input{
		ReasonCode: referral.ReasonCode(in.ReasonCode), Reason: in.Reason, Outcome: in.Outcome, ToAgency: in.ToAgency, Service: in.Service,
	})
	if err != nil {
		return nil, moveError(err)
	}
	if mv == referral.Accept && s.needsPlacement(r) && (in.Work == nil || in.Work.Placement == nil) {
		return nil, fmt.Errorf("%w: accepting a referral to %s takes a bed: give work.placement (bed, address, ends_on)", ErrInvalid, r.Service)
	}
	if err := s.recordWork(ctx, q, r, in.Work); err != nil {
		return nil, err
	}
	wire, err := s.sealWork(ctx, in.Work, other, r.ID)
	if err != nil {
		return nil, err
	}
	d := moveData{ReasonCode: in.ReasonCode, Reason: in.Reason, Outcome: in.Outcome, Note: in.Note, Work: wire}
	var msgs []outbox.Message
	if mv == referral.Forward {
		newID := uuid.Must(uuid.NewV7())
		d.NewReferralID, d.ToAgency, d.Service = &newID, in.ToAgency, in.Service
		fwd := NewReferral{ToAgency: in.ToAgency, Service: in.Service, Note: in.Note, CaseID: r.CaseID}
		// The forwarding agency shares the case on: it needs the family's
		// consent of its own, covering the person key the referral carries.
		key := person.Key(r.PersonKey)
		consent, err := s.checkConsent(ctx, in.ConsentID, in.ToAgency, key, sharedCategories(key))
		if err != nil {
			return nil, err
		}
		nr, err := s.prepareReferral(newID, fwd, &r.ID, r.Traceparent, person.Key(r.PersonKey), consent, time.Now().UTC().Truncate(time.Microsecond))
		if err != nil {
			return nil, err
		}
		m, err := s.writeReferrals(ctx, q, []newReferral{nr})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
		r.ForwardedTo, r.ForwardedAgency = &newID, in.ToAgency
	}
	seq := r.SeqOut + 1
	ev, err := s.registry.New(bus.Source(s.self), referral.EventType(mv), r.ID.String(), d)
	if err != nil {
		if errors.Is(err, event.ErrInvalid) {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil, err
	}
	ev.SetExtension(event.ExtCaseID, r.CaseID.String())
	if r.Traceparent != "" {
		ev.SetExtension(event.ExtTraceparent, r.Traceparent)
	}
	event.SetSequence(ev, int64(seq))
	msgs = append(msgs, outbox.Message{To: other, Event: ev})
	if err := s.record(ctx, q, r, s.self, mv, next, d, seq, r.SeqIn); err != nil {
		return nil, err
	}
	return msgs, nil
}

// record writes a move to the referral and its history.
func (s *Service) record(ctx context.Context, q *db.Queries, r db.Referral, by string, mv referral.Move, next referral.State, d moveData, seqOut, seqIn int32) error {
	reasonCode, reason, outcome := r.ReasonCode, r.Reason, r.Outcome
	if d.ReasonCode != "" || d.Reason != "" {
		reasonCode, reason = d.ReasonCode, d.Reason
	}
	if d.Outcome != "" {
		outcome = d.Outcome
	}
	if err := q.ReferralMove(ctx, db.ReferralMoveParams{
		ID: r.ID, Status: string(next), SeqOut: seqOut, SeqIn: seqIn, ReasonCode: reasonCode, Reason: reason, Outcome: outcome,
		ForwardedTo: r.ForwardedTo, ForwardedAgency: r.ForwardedAgency,
	}); err != nil {
		return fmt.Errorf("update referral: %w", err)
	}
	if err := q.HistoryInsert(ctx, db.HistoryInsertParams{
		ReferralID: r.ID, CaseID: r.CaseID, Agency: by, Move: string(mv), Status: string(next),
		ReasonCode: d.ReasonCode, Reason: d.Reason, Outcome: d.Outcome,
	}); err != nil {
		return fmt.Errorf("record history: %w", err)
	}
	if err := s.endStay(ctx, q, r, next); err != nil {
		return err
	}
	return s.moveTimers(ctx, q, r, next)
}

// moveError maps the state machine's refusals to the service's errors.
func moveError(err error) error {
	switch {
	case errors.Is(err, referral.ErrIllegalMove):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, referral.ErrNotParty):
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	default:
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
}

// applyMove applies a move the other party made. It reads and locks the
// referral, so it runs after the batch's new referrals are inserted.
func (s *Service) applyMove(ctx context.Context, q *db.Queries, e *ce.Event, mv referral.Move) (result error, err error) {
	id, perr := uuid.Parse(e.Subject())
	if perr != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject()), nil
	}
	r, err := q.ReferralGetForUpdate(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return inbox.Reject("%s has no referral %s: a %s event for it cannot apply", s.self, id, mv), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read referral: %w", err)
	}
	from := mustAgency(e.Source())
	var party referral.Party
	switch from {
	case r.FromAgency:
		party = referral.Sender
	case r.ToAgency:
		party = referral.Receiver
	default:
		return inbox.Reject("%s is not party to referral %s (%s to %s)", from, id, r.FromAgency, r.ToAgency), nil
	}
	if event.CaseID(e) != r.CaseID.String() {
		return inbox.Reject("event names case %s, but referral %s belongs to case %s", event.CaseID(e), id, r.CaseID), nil
	}
	seq, ok := event.Sequence(e)
	switch {
	case !ok:
		return inbox.Reject("a %s event needs the sequence extension", mv), nil
	case seq <= int64(r.SeqIn):
		return inbox.Reject("move %d of %s on referral %s was already applied", seq, from, id), nil
	case seq > int64(r.SeqIn)+1:
		return inbox.Later(fmt.Errorf("move %d of %s on referral %s waits for move %d", seq, from, id, r.SeqIn+1)), nil
	}
	var d moveData
	if err := event.Data(e, &d); err != nil {
		return inbox.Reject("%v", err), nil
	}
	state := referral.State(r.Status)
	if state == referral.Requested && party == referral.Receiver {
		// The receiver's move proves delivery even if its receipt is late.
		state = referral.Received
	}
	in := referral.Input{ReasonCode: referral.ReasonCode(d.ReasonCode), Reason: d.Reason, Outcome: d.Outcome, ToAgency: d.ToAgency, Service: d.Service}
	next, merr := referral.Apply(state, mv, party, in)
	if merr != nil {
		return inbox.Reject("%v", merr), nil
	}
	if mv == referral.Forward && d.NewReferralID != nil {
		r.ForwardedTo, r.ForwardedAgency = d.NewReferralID, d.ToAgency
	}
	if d.Work != nil {
		b, err := json.Marshal(s.openWork(d.Work, r.ID))
		if err != nil {
			return nil, err
		}
		if err := q.ReferralSetWork(ctx, db.ReferralSetWorkParams{ID: r.ID, Work: b}); err != nil {
			return nil, fmt.Errorf("keep work: %w", err)
		}
	}
	if err := s.record(ctx, q, r, from, mv, next, d, r.SeqOut, int32(seq)); err != nil {
		return nil, err
	}
	return nil, nil
}
