package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/bus"
	"github.com/refbus/refbus/pkg/event"
	"github.com/refbus/refbus/pkg/inbox"
	"github.com/refbus/refbus/pkg/outbox"
	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
	"github.com/refbus/refbus/services/internal/core/kind"
)

// Erasure is what erasing a person did at this node.
type Erasure struct {
	// Referrals are the referrals about the person this node was party
	// to: each is erased here and at its other party.
	Referrals []uuid.UUID `json:"referrals" doc:"The referrals about the person this node was party to: what they said is erased here and at the other party, and their data keys destroyed."`
	ErasedAt  time.Time   `json:"erased_at"`
}

// ErasePerson erases, on the person's request, everything about the
// person with national id personID that this node holds in its referrals:
// each open one is ended (cancelled by its sender, declined or failed by
// its receiver), then its note, person key, work records, reasons and
// outcome go and its data key is destroyed, and the other party is told
// to do the same. The referrals' status and history stay, without what
// they said. Returns
// ErrInvalid (no reason, a bad id), ErrNotFound (no referral about the
// person here).
func (a *App) ErasePerson(ctx context.Context, personID, reason string) (Erasure, error) {
	if strings.TrimSpace(reason) == "" {
		return Erasure{}, fmt.Errorf("%w: reason is required: say on whose request and why", ErrInvalid)
	}
	if strings.TrimSpace(personID) == "" {
		return Erasure{}, fmt.Errorf("%w: person_id is required", ErrInvalid)
	}
	key, err := a.personKey(personID)
	if err != nil {
		return Erasure{}, err
	}
	out := Erasure{ErasedAt: a.cfg.Now().UTC().Truncate(time.Microsecond)}
	err = a.inTx(ctx, func(q *coredb.Queries, tx pgx.Tx) error {
		all, err := q.ReferralListByPerson(ctx, string(key))
		if err != nil {
			return fmt.Errorf("list referrals about the person: %w", err)
		}
		// A supervisor of one organization erases its referrals only.
		var rs []coredb.Referral
		for _, r := range all {
			if a.sees(ctx, r) {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			return fmt.Errorf("%w: %s holds no referral about this person", ErrNotFound, a.self)
		}
		var msgs []outbox.Message
		for _, r := range rs {
			if mv, in, ok := endOnErasure(r, a.self, reason); ok {
				m, err := a.moveTx(ctx, q, tx, r, mv, in, SLA{})
				if err != nil {
					return fmt.Errorf("end referral %s: %w", r.ID, err)
				}
				msgs = append(msgs, m...)
			}
			other := r.ToAgency
			if other == a.self {
				other = r.FromAgency
			}
			m, err := a.notice(other, schemas.TypePersonErased, r.ID, r.CaseID, r.Traceparent, schemas.PersonErased{ErasedAt: out.ErasedAt})
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
			out.Referrals = append(out.Referrals, r.ID)
		}
		// The moves above were sealed with the keys as they were read;
		// the keys go with what the referrals said.
		if err := a.enqueue(ctx, tx, msgs...); err != nil {
			return err
		}
		if err := q.ConsentErasePerson(ctx, string(key)); err != nil {
			return fmt.Errorf("erase consents: %w", err)
		}
		if err := q.DisclosureDeleteByReferral(ctx, out.Referrals); err != nil {
			return fmt.Errorf("erase disclosures: %w", err)
		}
		return a.erase(ctx, q, tx, out.Referrals)
	})
	if err != nil {
		if known(err) {
			return Erasure{}, err
		}
		return Erasure{}, fmt.Errorf("erase person: %w", err)
	}
	a.log.Info("person erased", "referrals", len(out.Referrals))
	if err := a.compact(ctx); err != nil {
		a.log.Warn("compact", "err", err)
		a.compactSoon()
	}
	return out, nil
}

// endOnErasure is the move that ends referral r, if this node (self) can
// end it now: its sender cancels it, its receiver declines or fails it.
func endOnErasure(r coredb.Referral, self, reason string) (referral.Move, MoveInput, bool) {
	state := referral.State(r.Status)
	if state.Terminal() || r.KeyDestroyedAt != nil {
		return "", MoveInput{}, false
	}
	party := referral.Sender
	if r.ToAgency == self {
		if r.ConsentRevokedAt != nil {
			return "", MoveInput{}, false
		}
		party = referral.Receiver
	}
	in := MoveInput{Reason: "person erased on request: " + reason, ReasonCode: string(referral.Other)}
	allowed := referral.Allowed(state, party)
	for _, mv := range []referral.Move{referral.Cancel, referral.Decline, referral.Fail} {
		if slices.Contains(allowed, mv) {
			return mv, in, true
		}
	}
	return "", MoveInput{}, false
}

// applyErased erases what this node holds about a referral once its
// other party says it erased the person: what the referral said goes,
// with its data key; its status and history stay.
func (a *App) applyErased(ctx context.Context, q *coredb.Queries, db kind.DB, e *ce.Event) (error, error) {
	var d schemas.PersonErased
	if err := event.Data(e, &d); err != nil {
		return inbox.Reject("%v", err), nil
	}
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject()), nil
	}
	r, err := q.ReferralGetForUpdate(ctx, id)
	if isNoRows(err) {
		return inbox.Reject("%s has no referral %s whose person could be erased", a.self, id), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read referral: %w", err)
	}
	if from, _ := bus.NodeOf(e.Source()); from != r.FromAgency && from != r.ToAgency || from == a.self {
		return inbox.Reject("%s is not the other party of referral %s (%s to %s)", from, id, r.FromAgency, r.ToAgency), nil
	}
	if err := a.erase(ctx, q, db, []uuid.UUID{id}); err != nil {
		return nil, err
	}
	a.compactSoon()
	return nil, nil
}

// erase empties what referrals ids said, at this node: their note,
// person key, work, reasons and outcome, their history's reasons and
// outcomes and the kind's records of them, and destroys their data keys.
func (a *App) erase(ctx context.Context, q *coredb.Queries, db kind.DB, ids []uuid.UUID) error {
	if err := q.ReferralErase(ctx, ids); err != nil {
		return fmt.Errorf("erase referrals: %w", err)
	}
	if err := q.HistoryErase(ctx, ids); err != nil {
		return fmt.Errorf("erase history: %w", err)
	}
	return a.eraseWork(ctx, db, ids)
}

// eraseWork empties what the kind's records of referrals ids say about
// people, if they say anything (kind.Eraser).
func (a *App) eraseWork(ctx context.Context, db kind.DB, ids []uuid.UUID) error {
	if k, ok := a.kind.(kind.Eraser); ok {
		if err := k.Erase(ctx, db, ids); err != nil {
			return fmt.Errorf("%s erases its records: %w", a.kind.Name(), err)
		}
	}
	return nil
}
