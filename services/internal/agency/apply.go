package agency

import (
	"context"
	"encoding/json"
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
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/db"
)

// Apply applies events from other agencies to this agency's store; the
// inbox consumer calls it with a batch in one transaction. Rows are written
// set-wise, one statement per kind of change, whatever the batch size.
func (s *Service) Apply(ctx context.Context, tx *pgbatch.Tx, evs []*ce.Event) ([]error, error) {
	results := make([]error, len(evs))
	var recv db.ReferralReceiveParams
	var receipts []outbox.Receipt
	var moves []int
	// The referral each receipt is about (its subject), and the type of
	// the event it answers, by the receipt's index in receipts.
	var subjectOf, receiptTypes []string
	var works []requestedData
	for i, e := range evs {
		switch e.Type() {
		case TypeRequested:
			var d requestedData
			d, results[i] = s.checkRequested(e, &recv)
			if results[i] == nil {
				works = append(works, d)
			}
		case bus.ReceiptType:
			var d inbox.ReceiptData
			if err := event.Data(e, &d); err != nil {
				results[i] = inbox.Reject("%v", err)
				continue
			}
			id, err := uuid.Parse(d.EventID)
			if err != nil {
				results[i] = inbox.Reject("receipt for event %q, which this agency never sent", d.EventID)
				continue
			}
			receipts = append(receipts, outbox.Receipt{EventID: id, Outcome: d.Outcome, Reason: d.Reason, From: mustAgency(e.Source())})
			subjectOf, receiptTypes = append(subjectOf, e.Subject()), append(receiptTypes, d.EventType)
		case TypeOverdue, TypeConsentRevoked:
			moves = append(moves, i)
		default:
			if _, ok := moveOfType[e.Type()]; ok {
				moves = append(moves, i)
				continue
			}
			results[i] = inbox.Reject("%s does not handle events of type %s", s.self, e.Type())
		}
	}
	q := db.New(tx)
	// Writes nothing later in the batch decides on go with the COMMIT.
	later := db.New(tx.Later())
	if len(recv.Ids) > 0 {
		if err := later.ReferralReceive(ctx, recv); err != nil {
			return nil, fmt.Errorf("receive referrals: %w", err)
		}
		if err := s.received(ctx, q, tx, recv.Ids, works); err != nil {
			return nil, err
		}
	}
	// Moves apply after the batch's new referrals exist, in stream order.
	for _, i := range moves {
		var err error
		switch evs[i].Type() {
		case TypeOverdue:
			results[i], err = s.applyOverdue(ctx, q, evs[i])
		case TypeConsentRevoked:
			results[i], err = s.applyRevoked(ctx, q, evs[i])
		default:
			results[i], err = s.applyMove(ctx, q, evs[i], moveOfType[evs[i].Type()])
		}
		if err != nil {
			return nil, err
		}
	}
	if len(receipts) > 0 {
		// Nothing below reads what these write: they go with the COMMIT.
		if err := outbox.RecordReceipts(ctx, tx.Later(), receipts); err != nil {
			return nil, err
		}
		// The referrals of requested events receipted: each statement
		// keeps those whose receipt the outbox recorded with its outcome.
		var received db.ReferralMarkReceivedParams
		var undelivered db.ReferralMarkUndeliveredParams
		for i, r := range receipts {
			ref, err := uuid.Parse(subjectOf[i])
			switch {
			case err != nil || receiptTypes[i] != TypeRequested:
			case r.Outcome == "applied":
				received.Ids, received.EventIds = append(received.Ids, ref), append(received.EventIds, r.EventID)
			default:
				undelivered.Ids, undelivered.EventIds = append(undelivered.Ids, ref), append(undelivered.EventIds, r.EventID)
			}
		}
		if len(received.Ids) > 0 {
			if err := later.ReferralMarkReceived(ctx, received); err != nil {
				return nil, fmt.Errorf("mark received: %w", err)
			}
		}
		if len(undelivered.Ids) > 0 {
			if err := later.ReferralMarkUndelivered(ctx, undelivered); err != nil {
				return nil, fmt.Errorf("mark undelivered: %w", err)
			}
		}
	}
	return results, nil
}

// checkRequested adds a requested referral to recv, or says why it is
// refused.
func (s *Service) checkRequested(e *ce.Event, recv *db.ReferralReceiveParams) (d requestedData, _ error) {
	if err := event.Data(e, &d); err != nil {
		return d, inbox.Reject("%v", err)
	}
	if d.ToAgency != s.self {
		return d, inbox.Reject("referral is for %s, not for %s", d.ToAgency, s.self)
	}
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return d, inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject())
	}
	caseID, err := uuid.Parse(event.CaseID(e))
	if err != nil {
		return d, inbox.Reject("caseid extension %q is not a case id (a UUID)", event.CaseID(e))
	}
	// The receiver checks the consent too: it takes nothing the family
	// did not agree to give it.
	switch c := d.Consent; {
	case c == nil:
		return d, inbox.Reject("referral %s carries no consent of the family", id)
	case !c.ExpiresAt.After(e.Time()):
		return d, inbox.Reject("referral %s was sent under consent %s, which expired on %s", id, c.ID, c.ExpiresAt.Format(time.RFC3339))
	}
	for _, cat := range append(sharedCategories(person.Key(d.PersonKey)), d.Work.categories()...) {
		if !slices.Contains(d.Consent.DataCategories, cat) {
			return d, inbox.Reject("referral %s shares %s data, which consent %s does not cover", id, cat, d.Consent.ID)
		}
	}
	recv.ConsentIds = append(recv.ConsentIds, d.Consent.ID)
	recv.ConsentPurposes = append(recv.ConsentPurposes, d.Consent.Purpose)
	recv.ConsentExpiries = append(recv.ConsentExpiries, d.Consent.ExpiresAt)
	recv.Ids = append(recv.Ids, id)
	recv.CaseIds = append(recv.CaseIds, caseID)
	recv.FromAgencies = append(recv.FromAgencies, mustAgency(e.Source()))
	recv.ToAgencies = append(recv.ToAgencies, s.self)
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
	return d, nil
}

// received finishes the referrals just received: it keeps the work they
// carried, and declines at once, with no_capacity, those to a shelter
// with no free bed, so the sender can send the family elsewhere.
func (s *Service) received(ctx context.Context, q *db.Queries, tx outbox.DB, ids []uuid.UUID, ds []requestedData) error {
	var msgs []outbox.Message
	for i, d := range ds {
		if d.Work != nil {
			b, err := json.Marshal(d.Work)
			if err != nil {
				return err
			}
			if err := q.ReferralSetWork(ctx, db.ReferralSetWorkParams{ID: ids[i], Work: b}); err != nil {
				return fmt.Errorf("keep work: %w", err)
			}
		}
		if o, ok := s.offer(d.Service); !ok || o.Beds == 0 {
			continue
		}
		isFull, err := full(ctx, q, d.Service)
		if err != nil {
			return err
		}
		if !isFull {
			continue
		}
		r, err := q.ReferralGetForUpdate(ctx, ids[i])
		if err != nil {
			return fmt.Errorf("read referral: %w", err)
		}
		if r.Status != string(referral.Received) || r.FromAgency == s.self {
			continue // seen before
		}
		m, err := s.moveTx(ctx, q, r, referral.Decline, MoveInput{ReasonCode: string(referral.NoCapacity), Reason: noCapacityReason(d.Service)})
		if err != nil {
			return fmt.Errorf("decline for want of a bed: %w", err)
		}
		msgs = append(msgs, m...)
	}
	return s.out.Enqueue(ctx, tx, msgs...)
}

// mustAgency names the agency of a source the inbox already checked.
func mustAgency(source string) string {
	a, _ := bus.AgencyOf(source)
	return a
}
