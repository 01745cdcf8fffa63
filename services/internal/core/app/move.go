package app

import (
	"context"
	"errors"
	"fmt"
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

// MoveInput is what a caseworker gives with a move.
type MoveInput struct {
	ReasonCode string
	Reason     string
	Outcome    string
	Note       string
	// ToOrg and Service name the new referral of a forward (to an
	// organization of another node), and ConsentID the family's consent
	// to share with ToOrg.
	ToOrg     string
	Service   string
	ConsentID uuid.UUID
	// Work is this node's own work on the referral, told to the other
	// party: a placement when a shelter accepts, an assessment, learning
	// plan, benefit decision or screening when the work completes.
	Work *schemas.Work

	// toNode is the node that hosts ToOrg.
	toNode string
}

// Move makes a move on a referral this node is party to, and tells the
// other party. Returns ErrNotFound, ErrForbidden (not this node's move),
// ErrConflict (not allowed now; the message lists what is) or ErrInvalid
// (missing reason or outcome). A caller of one organization moves that
// organization's referrals only: another's is not found.
func (a *App) Move(ctx context.Context, id uuid.UUID, mv referral.Move, in MoveInput) (Referral, error) {
	if in.Work != nil && mv != referral.Accept && mv != referral.Complete {
		return Referral{}, fmt.Errorf("%w: work is told with accept (a placement) or complete, not with %s", ErrInvalid, mv)
	}
	if err := a.checkWork(in.Work); err != nil {
		return Referral{}, err
	}
	var sla SLA
	if mv == referral.Forward && in.ToOrg != "" {
		to, s, err := a.offered(ctx, in.ToOrg, in.Service)
		if err != nil {
			return Referral{}, err
		}
		in.toNode, sla = to.Node, s
	}
	err := a.inTx(ctx, func(q *coredb.Queries, tx pgx.Tx) error {
		r, err := q.ReferralGetForUpdate(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !a.sees(ctx, r)) {
			return fmt.Errorf("%w: no referral %s at %s", ErrNotFound, id, a.self)
		}
		if err != nil {
			return fmt.Errorf("read referral: %w", err)
		}
		msgs, err := a.moveTx(ctx, q, tx, r, mv, in, sla)
		if err != nil {
			return err
		}
		return a.enqueue(ctx, tx, msgs...)
	})
	if errConsentGone(err) {
		return Referral{}, a.consentGone(ctx, in.ConsentID, in.ToOrg, "", nil, "forwarded")
	}
	if err != nil {
		if known(err) {
			return Referral{}, err
		}
		return Referral{}, fmt.Errorf("%s referral: %w", mv, err)
	}
	// A place taken or freed shows in the directory at once.
	if err := a.publishListing(ctx); err != nil {
		a.log.Warn("directory", "err", err)
	}
	return a.Referral(ctx, id)
}

// moveTx makes a move on r, locked by the caller, and returns the events
// to enqueue in the same transaction. sla is the forward's new referral's.
func (a *App) moveTx(ctx context.Context, q *coredb.Queries, db kind.DB, r coredb.Referral, mv referral.Move, in MoveInput, sla SLA) ([]outbox.Message, error) {
	incoming := r.ToAgency == a.self
	if incoming && r.ConsentRevokedAt != nil {
		return nil, fmt.Errorf("%w: the family revoked its consent to referral %s on %s: it can no longer be worked on", ErrConflict, r.ID, r.ConsentRevokedAt.UTC().Format(time.RFC3339))
	}
	if r.KeyDestroyedAt != nil {
		return nil, fmt.Errorf("%w: the data key of referral %s was destroyed on %s (consent revoked or person erased): it can no longer be worked on", ErrConflict, r.ID, r.KeyDestroyedAt.UTC().Format(time.RFC3339))
	}
	party, other := referral.Receiver, r.FromAgency
	if !incoming {
		party, other = referral.Sender, r.ToAgency
	}
	next, err := referral.Apply(referral.State(r.Status), mv, party, referral.Input{
		ReasonCode: referral.ReasonCode(in.ReasonCode), Reason: in.Reason, Outcome: in.Outcome, ToAgency: in.toNode, Service: in.Service,
	})
	if err != nil {
		return nil, moveError(err)
	}
	if mv == referral.Accept && incoming {
		if err := a.kind.Accepting(ctx, db, kindReferral(r), in.Work); err != nil {
			return nil, err
		}
	}
	if err := a.recordWork(ctx, q, db, r, in.Work); err != nil {
		return nil, err
	}
	f := schemas.MoveFields{ReasonCode: in.ReasonCode, Reason: in.Reason, Outcome: in.Outcome, Note: in.Note, Work: wireWork(in.Work)}
	var msgs []outbox.Message
	if mv == referral.Forward {
		newID := uuid.Must(uuid.NewV7())
		f.NewReferralID, f.ToAgency, f.ToOrg, f.Service = &newID, in.toNode, in.ToOrg, in.Service
		// The organization that received the referral passes it on.
		if err := a.refersFor(ctx, r.ToOrg); err != nil {
			return nil, err
		}
		fwd := NewReferral{ToOrg: in.ToOrg, FromOrg: r.ToOrg, Service: in.Service, Note: in.Note, CaseID: r.CaseID, toNode: in.toNode}
		if r.Urgency == schemas.Urgent { // an urgent need stays urgent on its way
			fwd.Urgency = schemas.Urgent
		}
		// The forwarding node shares the case on: it needs the family's
		// consent of its own, covering the person key the referral carries.
		key := person.Key(r.PersonKey)
		consent, err := a.checkConsent(ctx, in.ConsentID, in.ToOrg, key, sharedCategories(key))
		if err != nil {
			return nil, err
		}
		nr, err := a.prepareReferral(ctx, newID, fwd, &r.ID, r.Traceparent, key, consent, sla, time.Now().UTC().Truncate(time.Microsecond))
		if err != nil {
			return nil, err
		}
		m, err := a.writeReferrals(ctx, q, db, []newReferral{nr})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
		r.ForwardedTo, r.ForwardedAgency, r.ForwardedOrg = &newID, in.toNode, in.ToOrg
	}
	seq := r.SeqOut + 1
	data, err := schemas.MoveData(mv, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ev, err := a.registry.New(bus.Source(a.self), schemas.MoveType(mv), r.ID.String(), data)
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
	msgs = append(msgs, outbox.Message{To: other, Event: ev, DataKey: r.DataKey})
	if err := a.record(ctx, q, db, r, a.self, mv, next, f, seq, r.SeqIn); err != nil {
		return nil, err
	}
	return msgs, nil
}

// record writes a move to the referral and its history, and lets the
// kind and the deadlines follow it.
func (a *App) record(ctx context.Context, q *coredb.Queries, db kind.DB, r coredb.Referral, by string, mv referral.Move, next referral.State, f schemas.MoveFields, seqOut, seqIn int32) error {
	reasonCode, reason, outcome := r.ReasonCode, r.Reason, r.Outcome
	if f.ReasonCode != "" || f.Reason != "" {
		reasonCode, reason = f.ReasonCode, f.Reason
	}
	if f.Outcome != "" {
		outcome = f.Outcome
	}
	if err := q.ReferralMove(ctx, coredb.ReferralMoveParams{
		ID: r.ID, Status: string(next), SeqOut: seqOut, SeqIn: seqIn, ReasonCode: reasonCode, Reason: reason, Outcome: outcome,
		ForwardedTo: r.ForwardedTo, ForwardedAgency: r.ForwardedAgency, ForwardedOrg: r.ForwardedOrg,
		ActionDue: a.actionDue(ctx, r, next),
	}); err != nil {
		return fmt.Errorf("update referral: %w", err)
	}
	if err := q.HistoryInsert(ctx, coredb.HistoryInsertParams{
		ReferralID: r.ID, CaseID: r.CaseID, Agency: by, Move: string(mv), Status: string(next),
		ReasonCode: f.ReasonCode, Reason: f.Reason, Outcome: f.Outcome,
	}); err != nil {
		return fmt.Errorf("record history: %w", err)
	}
	if r.ToAgency == a.self && next.Terminal() {
		if err := a.kind.Ended(ctx, db, kindReferral(r)); err != nil {
			return err
		}
	}
	return a.moveTimers(ctx, q, r, next)
}

// moveError maps the state machine's refusals to the application's errors.
func moveError(err error) error {
	// The state machine names the node a forward goes to; the caller names
	// its organization, and the node follows.
	var missing *referral.MissingInputError
	if errors.As(err, &missing) && missing.Field == referral.FieldToAgency {
		return fmt.Errorf("%w: %s needs the organization to forward to (to_org)", ErrInvalid, missing.Move)
	}
	switch {
	case errors.Is(err, referral.ErrIllegalMove):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, referral.ErrNotParty):
		return fmt.Errorf("%w: %v", ErrForbidden, err)
	default:
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
}

// kindReferral is what a kind sees of r.
func kindReferral(r coredb.Referral) kind.Referral {
	return kind.Referral{ID: r.ID, CaseID: r.CaseID, From: r.FromAgency, To: r.ToAgency, Service: r.Service}
}
