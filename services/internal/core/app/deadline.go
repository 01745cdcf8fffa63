package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
	"github.com/refbus/refbus/services/internal/core/directory"
)

// SLA is how long a referral for a service may wait: to be accepted, and
// then to be completed. Zero means no deadline.
type SLA struct {
	Accept   time.Duration
	Complete time.Duration
}

// DefaultSLA is the deadline of a service that names none: accepted
// within three days.
var DefaultSLA = SLA{Accept: 72 * time.Hour}

// sla is the deadlines of a referral to organization org for service:
// this node's own setting for the service, else the service's as the
// directory lists it, else this node's default, else DefaultSLA.
func (a *App) sla(ctx context.Context, org, service string) SLA {
	h, _ := a.dir.Organization(ctx, org) // one not listed names no deadline: the defaults apply
	o, _ := h.Org.Offer(service)
	return a.slaOf(service, o)
}

// slaOf is the deadlines of a referral for service, as the receiver
// offers it in o (zero when it does not list it).
func (a *App) slaOf(service string, o directory.Offer) SLA {
	if v, ok := a.cfg.SLAs[service]; ok && service != "" {
		return v
	}
	if o.AcceptWithin != 0 || o.CompleteWithin != 0 {
		return SLA{Accept: time.Duration(o.AcceptWithin), Complete: time.Duration(o.CompleteWithin)}
	}
	if v, ok := a.cfg.SLAs[""]; ok {
		return v
	}
	return DefaultSLA
}

// setTimer starts the deadline of kind for a referral this node sent.
func (a *App) setTimer(ctx context.Context, q *coredb.Queries, r coredb.Referral, kind string) error {
	sla := a.sla(ctx, r.ToOrg, r.Service)
	d := sla.Accept
	if kind == "complete" {
		d = sla.Complete
	}
	if d == 0 {
		return nil
	}
	if err := q.SLATimerSet(ctx, coredb.SLATimerSetParams{ReferralIds: []uuid.UUID{r.ID}, Kinds: []string{kind}, DueAts: []time.Time{a.cfg.Now().Add(d)}}); err != nil {
		return fmt.Errorf("set %s deadline: %w", kind, err)
	}
	return nil
}

// moveTimers keeps the sender's deadlines in step with a move: acceptance
// stops the accept clock and starts the completion clock; an end stops both.
func (a *App) moveTimers(ctx context.Context, q *coredb.Queries, r coredb.Referral, next referral.State) error {
	if r.FromAgency != a.self {
		return nil // deadlines are the sender's
	}
	switch {
	case next.Terminal():
		return q.SLATimerClear(ctx, coredb.SLATimerClearParams{ReferralID: r.ID, Kinds: []string{"accept", "complete"}})
	case next == referral.Accepted:
		if err := q.SLATimerClear(ctx, coredb.SLATimerClearParams{ReferralID: r.ID, Kinds: []string{"accept"}}); err != nil {
			return err
		}
		return a.setTimer(ctx, q, r, "complete")
	}
	return nil
}

// FireDueTimers sends referral.overdue for every deadline that has passed,
// to the receiving node and to the coordinator, and records it here. Each
// timer fires once: it is marked in the transaction that enqueues its
// events. It returns how many fired.
func (a *App) FireDueTimers(ctx context.Context) (int, error) {
	now := a.cfg.Now()
	fired := 0
	err := a.inTx(ctx, func(q *coredb.Queries, tx pgx.Tx) error {
		due, err := q.SLATimersDue(ctx, now)
		if err != nil {
			return fmt.Errorf("read due deadlines: %w", err)
		}
		var msgs []outbox.Message
		for _, t := range due {
			data := schemas.Overdue{Kind: t.Kind, DueAt: t.DueAt.UTC(), FromAgency: t.FromAgency, ToAgency: t.ToAgency, FromOrg: t.FromOrg, ToOrg: t.ToOrg, Service: t.Service}
			// The receiver, and the coordinator unless it is the receiver
			// (which escalates as it marks the referral overdue).
			targets := []string{t.ToAgency}
			if a.cfg.Coordinator != "" && a.cfg.Coordinator != t.ToAgency {
				targets = append(targets, a.cfg.Coordinator)
			}
			for _, to := range targets {
				if to == a.self {
					continue
				}
				m, err := a.notice(to, schemas.TypeOverdue, t.ReferralID, t.CaseID, t.Traceparent, data)
				if err != nil {
					return err
				}
				msgs = append(msgs, m)
			}
			if err := q.SLATimerFired(ctx, coredb.SLATimerFiredParams{ReferralID: t.ReferralID, Kind: t.Kind, Now: &now}); err != nil {
				return err
			}
			if err := q.ReferralMarkOverdue(ctx, coredb.ReferralMarkOverdueParams{ID: t.ReferralID, At: &now}); err != nil {
				return err
			}
			if a.cfg.Coordinator != "" && a.cfg.Coordinator == a.self {
				if err := a.escalate(ctx, q, t.ReferralID, t.CaseID, data); err != nil {
					return err
				}
			}
			fired++
		}
		return a.out.Enqueue(ctx, tx, msgs...)
	})
	if err != nil {
		return 0, fmt.Errorf("fire deadlines: %w", err)
	}
	return fired, nil
}

// applyOverdue records an overdue referral: the receiver marks its copy,
// the coordinator records an escalation.
func (a *App) applyOverdue(ctx context.Context, q *coredb.Queries, e *ce.Event) (error, error) {
	var d schemas.Overdue
	if err := event.Data(e, &d); err != nil {
		return inbox.Reject("%v", err), nil
	}
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject()), nil
	}
	if from, _ := bus.NodeOf(e.Source()); from != d.FromAgency {
		return inbox.Reject("only the sending node %s reports its referral overdue, not %s", d.FromAgency, from), nil
	}
	caseID, err := uuid.Parse(event.CaseID(e))
	if err != nil {
		return inbox.Reject("caseid extension %q is not a case id (a UUID)", event.CaseID(e)), nil
	}
	if d.ToAgency == a.self {
		r, err := q.ReferralGetForUpdate(ctx, id)
		if isNoRows(err) {
			return inbox.Reject("%s has no referral %s to mark overdue", a.self, id), nil
		}
		if err != nil {
			return nil, fmt.Errorf("read referral: %w", err)
		}
		if r.FromAgency != d.FromAgency {
			return inbox.Reject("referral %s came from %s, not from %s", id, r.FromAgency, d.FromAgency), nil
		}
		at := e.Time()
		if err := q.ReferralMarkOverdue(ctx, coredb.ReferralMarkOverdueParams{ID: r.ID, At: &at}); err != nil {
			return nil, err
		}
		if a.cfg.Coordinator != a.self {
			return nil, nil
		}
		// The coordinator is the receiver: the sender told it once, as
		// the receiver, and it escalates too.
	}
	if a.cfg.Coordinator == "" || a.cfg.Coordinator != a.self {
		return inbox.Reject("%s is neither the receiver of referral %s nor the coordinator", a.self, id), nil
	}
	// The coordinator has no copy to compare with: the organizations the
	// escalation names must be the nodes' own, as the registry says.
	if a.hosts != nil {
		for _, p := range [][2]string{{d.FromAgency, d.FromOrg}, {d.ToAgency, d.ToOrg}} {
			if p[1] == "" {
				continue
			}
			err := a.hosts(ctx, p[0], p[1])
			if errors.Is(err, ErrNotHosted) {
				return inbox.Reject("overdue referral %s names the organization %s of %s: %v", id, p[1], p[0], err), nil
			}
			if err != nil {
				return inbox.Later(err), nil
			}
		}
	}
	return nil, a.escalate(ctx, q, id, caseID, d)
}

func (a *App) escalate(ctx context.Context, q *coredb.Queries, id, caseID uuid.UUID, d schemas.Overdue) error {
	return q.EscalationInsert(ctx, coredb.EscalationInsertParams{
		ReferralID: id, Kind: d.Kind, CaseID: caseID, FromAgency: d.FromAgency, ToAgency: d.ToAgency,
		FromOrg: cmp.Or(d.FromOrg, d.FromAgency), ToOrg: cmp.Or(d.ToOrg, d.ToAgency), Service: d.Service, DueAt: d.DueAt,
	})
}

// Escalation is an overdue referral of other nodes, as the coordinator
// sees it.
type Escalation struct {
	ReferralID uuid.UUID `json:"referral_id"`
	Kind       string    `json:"kind" doc:"accept or complete: which deadline passed"`
	CaseID     uuid.UUID `json:"case_id"`
	FromAgency string    `json:"from_agency"`
	ToAgency   string    `json:"to_agency"`
	FromOrg    string    `json:"from_org"`
	ToOrg      string    `json:"to_org"`
	Service    string    `json:"service"`
	DueAt      time.Time `json:"due_at"`
	ReceivedAt time.Time `json:"received_at"`
}

// Escalations lists the overdue referrals this node coordinates, newest
// deadline first.
func (a *App) Escalations(ctx context.Context, limit int) ([]Escalation, error) {
	rs, err := coredb.New(a.pool).EscalationList(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("list escalations: %w", err)
	}
	return mapSlice(rs, func(e coredb.Escalation) Escalation {
		return Escalation{
			ReferralID: e.ReferralID, Kind: e.Kind, CaseID: e.CaseID, FromAgency: e.FromAgency, ToAgency: e.ToAgency, FromOrg: e.FromOrg, ToOrg: e.ToOrg,
			Service: e.Service, DueAt: e.DueAt, ReceivedAt: e.ReceivedAt,
		}
	}), nil
}
