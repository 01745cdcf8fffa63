package app

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/person"
	"github.com/refbus/refbus/pkg/pgbatch"
	"github.com/refbus/refbus/pkg/receipt"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Handler applies what other nodes send: it is the inbox's handler.
func (a *App) Handler() inbox.Handler { return handler{a} }

// handler applies events from other nodes to this node's store, a batch
// at a time in the inbox's transaction, writing rows set-wise: one
// statement per kind of change, whatever the batch size.
type handler struct{ a *App }

// Apply applies new events, none seen before.
func (h handler) Apply(ctx context.Context, tx *pgbatch.Tx, evs []*ce.Event) ([]error, error) {
	a := h.a
	results := make([]error, len(evs))
	var recv coredb.ReferralReceiveParams
	var moves []int
	for i, e := range evs {
		switch e.Type() {
		case schemas.TypeRequested:
			results[i] = a.checkRequested(ctx, e, &recv)
		case schemas.TypeOverdue, schemas.TypeConsentRevoked, schemas.TypePersonErased, schemas.TypeAddressDisclosed:
			moves = append(moves, i)
		default:
			if _, ok := schemas.MoveOf(e.Type()); ok {
				moves = append(moves, i)
				continue
			}
			results[i] = inbox.Reject("%s does not handle events of type %s", a.self, e.Type())
		}
	}
	q := coredb.New(tx)
	if len(recv.Ids) > 0 {
		// With no read needed, it goes with the next statement or the
		// COMMIT.
		if err := coredb.New(tx.Later()).ReferralReceive(ctx, recv); err != nil {
			return nil, fmt.Errorf("receive referrals: %w", err)
		}
		if err := a.received(ctx, q, tx, recv); err != nil {
			return nil, err
		}
	}
	// Moves apply after the batch's new referrals exist, in stream order.
	for _, i := range moves {
		var err error
		switch evs[i].Type() {
		case schemas.TypeOverdue:
			results[i], err = a.applyOverdue(ctx, q, evs[i])
		case schemas.TypeConsentRevoked:
			results[i], err = a.applyRevoked(ctx, q, evs[i])
		case schemas.TypePersonErased:
			results[i], err = a.applyErased(ctx, q, tx, evs[i])
		case schemas.TypeAddressDisclosed:
			results[i], err = a.applyDisclosed(ctx, q, evs[i])
		default:
			mv, _ := schemas.MoveOf(evs[i].Type())
			results[i], err = a.applyMove(ctx, q, tx, evs[i], mv)
		}
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// Receipted records what receivers said of the referrals this node sent:
// received, or refused at the bus and why. Repeats change nothing.
func (h handler) Receipted(ctx context.Context, tx *pgbatch.Tx, rs []receipt.Receipt) error {
	var received coredb.ReferralMarkReceivedParams
	var refused coredb.ReferralMarkUndeliveredParams
	for _, r := range rs {
		id, err := uuid.Parse(r.Subject)
		if err != nil || r.EventType != schemas.TypeRequested {
			continue // a move's receipt: the move's own event says the rest
		}
		if r.Refused {
			refused.Ids, refused.Froms, refused.Reasons = append(refused.Ids, id), append(refused.Froms, r.From), append(refused.Reasons, r.Reason)
		} else {
			received.Ids, received.Froms = append(received.Ids, id), append(received.Froms, r.From)
		}
	}
	later := coredb.New(tx.Later())
	if len(received.Ids) > 0 {
		if err := later.ReferralMarkReceived(ctx, received); err != nil {
			return fmt.Errorf("mark received: %w", err)
		}
	}
	if len(refused.Ids) > 0 {
		if err := later.ReferralMarkUndelivered(ctx, refused); err != nil {
			return fmt.Errorf("mark undelivered: %w", err)
		}
	}
	return nil
}

// checkRequested adds a requested referral to recv, or says why it is
// refused.
func (a *App) checkRequested(ctx context.Context, e *ce.Event, recv *coredb.ReferralReceiveParams) error {
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject())
	}
	// What it says about the family comes sealed under the referral's
	// data key, which comes wrapped to this node.
	e, key, err := a.openRequest(ctx, e, id)
	if err != nil {
		return err
	}
	var d schemas.Requested
	if err := event.Data(e, &d); err != nil {
		return inbox.Reject("%v", err)
	}
	if d.ToAgency != a.self {
		return inbox.Reject("referral is for %s, not for %s", d.ToAgency, a.self)
	}
	// A sender that names no organizations is one named after its node,
	// and refers to this node's first.
	from, _ := bus.NodeOf(e.Source())
	fromOrg, toOrg := cmp.Or(d.FromOrg, from), cmp.Or(d.ToOrg, a.cfg.Organizations[0].ID)
	if _, ok := a.own(toOrg); !ok {
		return inbox.Reject("referral is for the organization %s, which %s does not host (it hosts %s)", toOrg, a.self, a.ownIDs())
	}
	if a.hosts != nil {
		if d.FromOrg == "" {
			return inbox.Reject("referral names no sending organization (from_org): in a network with a registry a sender names the organization it refers for")
		}
		err := a.hosts(ctx, from, fromOrg)
		if errors.Is(err, ErrNotHosted) {
			return inbox.Reject("referral is from the organization %s, which its sender %s may not refer for: %v", fromOrg, from, err)
		}
		if err != nil {
			return inbox.Later(err)
		}
	}
	caseID, err := uuid.Parse(event.CaseID(e))
	if err != nil {
		return inbox.Reject("caseid extension %q is not a case id (a UUID)", event.CaseID(e))
	}
	// The receiver checks the consent too: it takes nothing the family
	// did not agree to give it.
	switch c := d.Consent; {
	case c == nil:
		return inbox.Reject("referral %s carries no consent of the family", id)
	case !c.ExpiresAt.After(e.Time()):
		return inbox.Reject("referral %s was sent under consent %s, which expired on %s", id, c.ID, c.ExpiresAt.Format(time.RFC3339))
	}
	for _, cat := range append(sharedCategories(person.Key(d.PersonKey)), d.Work.Categories()...) {
		if !slices.Contains(d.Consent.DataCategories, cat) {
			return inbox.Reject("referral %s shares %s data, which consent %s does not cover", id, cat, d.Consent.ID)
		}
	}
	recv.ConsentIds = append(recv.ConsentIds, d.Consent.ID)
	recv.ConsentPurposes = append(recv.ConsentPurposes, d.Consent.Purpose)
	recv.ConsentExpiries = append(recv.ConsentExpiries, d.Consent.ExpiresAt)
	recv.Ids = append(recv.Ids, id)
	recv.CaseIds = append(recv.CaseIds, caseID)
	recv.FromAgencies = append(recv.FromAgencies, from)
	recv.ToAgencies = append(recv.ToAgencies, a.self)
	recv.FromOrgs = append(recv.FromOrgs, fromOrg)
	recv.ToOrgs = append(recv.ToOrgs, toOrg)
	recv.Services = append(recv.Services, d.Service)
	recv.Notes = append(recv.Notes, d.Note)
	parent := uuid.Nil
	if d.ParentID != nil {
		parent = *d.ParentID
	}
	recv.ParentIds = append(recv.ParentIds, parent)
	recv.PersonKeys = append(recv.PersonKeys, d.PersonKey)
	tp, _ := e.Extensions()[event.ExtTraceparent].(string)
	recv.Traceparents = append(recv.Traceparents, tp)
	work := ""
	if d.Work != nil {
		b, err := json.Marshal(d.Work)
		if err != nil {
			return inbox.Reject("work: %v", err)
		}
		work = string(b)
	}
	recv.Works = append(recv.Works, work)
	recv.DataKeys = append(recv.DataKeys, key)
	recv.Urgencies = append(recv.Urgencies, cmp.Or(d.Urgency, schemas.Routine))
	recv.ActionDues = append(recv.ActionDues, dueOr(d.AcceptBy))
	return nil
}

// received tells the kind, if it acts on what its node receives, of the
// referrals this transaction recorded (a referral that was already here
// is not recorded again, nor told), and declines at once those it cannot
// take (a shelter with no free bed), so the sender can look elsewhere.
func (a *App) received(ctx context.Context, q *coredb.Queries, tx *pgbatch.Tx, recv coredb.ReferralReceiveParams) error {
	k, ok := a.kind.(kind.Receiver)
	if !ok {
		return nil
	}
	var wanted []uuid.UUID
	rs := make(map[uuid.UUID]kind.Referral, len(recv.Ids))
	for i, id := range recv.Ids {
		r := kind.Referral{ID: id, CaseID: recv.CaseIds[i], From: recv.FromAgencies[i], To: a.self, Service: recv.Services[i]}
		if k.Wants(r) {
			wanted = append(wanted, id)
			rs[id] = r
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	recorded, err := q.ReferralReceivedNow(ctx, wanted)
	if err != nil {
		return fmt.Errorf("read referrals received: %w", err)
	}
	fresh := make(map[uuid.UUID]bool, len(recorded))
	for _, id := range recorded {
		fresh[id] = true
	}
	var msgs []outbox.Message
	for _, id := range wanted { // in the stream's order
		if !fresh[id] {
			continue
		}
		decline, err := k.Received(ctx, tx, rs[id])
		if err != nil {
			return fmt.Errorf("%s receives referral %s: %w", a.kind.Name(), id, err)
		}
		if decline == nil {
			continue
		}
		r, err := q.ReferralGetForUpdate(ctx, id)
		if err != nil {
			return fmt.Errorf("read referral: %w", err)
		}
		m, err := a.moveTx(ctx, q, tx, r, referral.Decline, MoveInput{ReasonCode: decline.ReasonCode, Reason: decline.Reason}, SLA{})
		if err != nil {
			return fmt.Errorf("decline at once: %w", err)
		}
		msgs = append(msgs, m...)
	}
	return a.out.Enqueue(ctx, tx, msgs...)
}

// applyMove applies a move the other party made. It reads and locks the
// referral, so it runs after the batch's new referrals are inserted.
func (a *App) applyMove(ctx context.Context, q *coredb.Queries, tx *pgbatch.Tx, e *ce.Event, mv referral.Move) (result error, err error) {
	id, perr := uuid.Parse(e.Subject())
	if perr != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject()), nil
	}
	r, err := q.ReferralGetForUpdate(ctx, id)
	if isNoRows(err) {
		return inbox.Reject("%s has no referral %s: a %s event for it cannot apply", a.self, id, mv), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read referral: %w", err)
	}
	from, _ := bus.NodeOf(e.Source())
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
	if e, perr = a.openMove(e, r); perr != nil {
		return perr, nil
	}
	f, derr := schemas.ReadMove(e)
	if derr != nil {
		return inbox.Reject("%v", derr), nil
	}
	state := referral.State(r.Status)
	if state == referral.Requested && party == referral.Receiver {
		// The receiver's move proves delivery even if its receipt is late.
		state = referral.Received
		if err := q.ReferralMarkDelivered(ctx, coredb.ReferralMarkDeliveredParams{ID: r.ID, At: e.Time()}); err != nil {
			return nil, fmt.Errorf("mark delivered: %w", err)
		}
	}
	in := referral.Input{ReasonCode: referral.ReasonCode(f.ReasonCode), Reason: f.Reason, Outcome: f.Outcome, ToAgency: f.ToAgency, Service: f.Service}
	next, merr := referral.Apply(state, mv, party, in)
	if merr != nil {
		return inbox.Reject("%v", merr), nil
	}
	if mv == referral.Forward && f.NewReferralID != nil {
		r.ForwardedTo, r.ForwardedAgency, r.ForwardedOrg = f.NewReferralID, f.ToAgency, cmp.Or(f.ToOrg, f.ToAgency)
	}
	if f.Work != nil {
		b, err := json.Marshal(f.Work)
		if err != nil {
			return nil, err
		}
		if err := q.ReferralSetWork(ctx, coredb.ReferralSetWorkParams{ID: r.ID, Work: b}); err != nil {
			return nil, fmt.Errorf("keep work: %w", err)
		}
	}
	if err := a.record(ctx, q, tx, r, from, mv, next, f, r.SeqOut, int32(seq)); err != nil {
		return nil, err
	}
	return nil, nil
}
