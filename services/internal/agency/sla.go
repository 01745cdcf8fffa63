package agency

import (
	"context"
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
	"github.com/refbus/refbus/services/internal/db"
)

// TypeOverdue is the event a sending agency emits when a deadline passes.
const TypeOverdue = "org.refbus.referral.overdue.v1"

// SLA is how long a referral for a service may wait: to be accepted, and
// then to be completed. Zero means no deadline.
type SLA struct {
	Accept   time.Duration
	Complete time.Duration
}

// DefaultSLAs are the deadlines per service; the "" entry applies to
// services not named.
var DefaultSLAs = map[string]SLA{
	"crisis_shelter":                {Accept: 2 * time.Hour, Complete: 183 * 24 * time.Hour},
	"crisis_shelter_nur":            {Accept: 2 * time.Hour, Complete: 183 * 24 * time.Hour},
	"mothers_home":                  {Accept: 24 * time.Hour},
	"early_intervention_assessment": {Accept: 10 * 24 * time.Hour, Complete: 60 * 24 * time.Hour},
	"":                              {Accept: 72 * time.Hour},
}

func (s *Service) sla(service string) SLA {
	if v, ok := s.cfg.SLAs[service]; ok {
		return v
	}
	return s.cfg.SLAs[""]
}

// setTimer starts the deadline of kind for a referral this agency sent.
func (s *Service) setTimer(ctx context.Context, q *db.Queries, id uuid.UUID, service, kind string) error {
	d := s.sla(service).Accept
	if kind == "complete" {
		d = s.sla(service).Complete
	}
	if d == 0 {
		return nil
	}
	if err := q.SLATimerSet(ctx, db.SLATimerSetParams{ReferralIds: []uuid.UUID{id}, Kinds: []string{kind}, DueAts: []time.Time{s.cfg.Now().Add(d)}}); err != nil {
		return fmt.Errorf("set %s deadline: %w", kind, err)
	}
	return nil
}

// moveTimers keeps the sender's deadlines in step with a move: acceptance
// stops the accept clock and starts the completion clock; an end stops both.
func (s *Service) moveTimers(ctx context.Context, q *db.Queries, r db.Referral, next referral.State) error {
	if r.FromAgency != s.self {
		return nil // deadlines are the sender's
	}
	switch {
	case next.Terminal():
		return q.SLATimerClear(ctx, db.SLATimerClearParams{ReferralID: r.ID, Kinds: []string{"accept", "complete"}})
	case next == referral.Accepted:
		if err := q.SLATimerClear(ctx, db.SLATimerClearParams{ReferralID: r.ID, Kinds: []string{"accept"}}); err != nil {
			return err
		}
		return s.setTimer(ctx, q, r.ID, r.Service, "complete")
	}
	return nil
}

type overdueData struct {
	Kind       string    `json:"kind"`
	DueAt      time.Time `json:"due_at"`
	FromAgency string    `json:"from_agency"`
	ToAgency   string    `json:"to_agency"`
	Service    string    `json:"service"`
}

// FireDueTimers sends referral.overdue for every deadline that has passed,
// to the receiving agency and to the coordinator, and records it here. Each
// timer fires once: it is marked in the transaction that enqueues its
// events. It returns how many fired.
func (s *Service) FireDueTimers(ctx context.Context) (int, error) {
	now := s.cfg.Now()
	fired := 0
	err := s.inTx(ctx, func(q *db.Queries, tx pgx.Tx) error {
		due, err := q.SLATimersDue(ctx, now)
		if err != nil {
			return fmt.Errorf("read due deadlines: %w", err)
		}
		var msgs []outbox.Message
		for _, t := range due {
			data := overdueData{Kind: t.Kind, DueAt: t.DueAt.UTC(), FromAgency: t.FromAgency, ToAgency: t.ToAgency, Service: t.Service}
			for _, to := range []string{t.ToAgency, s.cfg.Coordinator} {
				if to == s.self || (to == s.cfg.Coordinator && to == t.ToAgency) {
					continue
				}
				e, err := s.registry.New(bus.Source(s.self), TypeOverdue, t.ReferralID.String(), data)
				if err != nil {
					return err
				}
				e.SetExtension(event.ExtCaseID, t.CaseID.String())
				if t.Traceparent != "" {
					e.SetExtension(event.ExtTraceparent, t.Traceparent)
				}
				msgs = append(msgs, outbox.Message{To: to, Event: e})
			}
			if err := q.SLATimerFired(ctx, db.SLATimerFiredParams{ReferralID: t.ReferralID, Kind: t.Kind, Now: &now}); err != nil {
				return err
			}
			if err := q.ReferralMarkOverdue(ctx, db.ReferralMarkOverdueParams{ID: t.ReferralID, At: &now}); err != nil {
				return err
			}
			if s.cfg.Coordinator == s.self {
				if err := s.escalate(ctx, q, t.ReferralID, t.CaseID, data); err != nil {
					return err
				}
			}
			fired++
		}
		return s.out.Enqueue(ctx, tx, msgs...)
	})
	if err != nil {
		return 0, fmt.Errorf("fire deadlines: %w", err)
	}
	return fired, nil
}

// runTimers fires due deadlines every tick until ctx ends.
func (s *Service) runTimers(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.SLATick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := s.FireDueTimers(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("deadlines", "err", err)
			}
		}
	}
}

// applyOverdue records an overdue referral: the receiver marks its copy,
// the coordinator records an escalation.
func (s *Service) applyOverdue(ctx context.Context, q *db.Queries, e *ce.Event) (error, error) {
	var d overdueData
	if err := event.Data(e, &d); err != nil {
		return inbox.Reject("%v", err), nil
	}
	id, err := uuid.Parse(e.Subject())
	if err != nil {
		return inbox.Reject("event subject %q is not a referral id (a UUID)", e.Subject()), nil
	}
	if from := mustAgency(e.Source()); from != d.FromAgency {
		return inbox.Reject("only the sending agency %s reports its referral overdue, not %s", d.FromAgency, from), nil
	}
	caseID, err := uuid.Parse(event.CaseID(e))
	if err != nil {
		return inbox.Reject("caseid extension %q is not a case id (a UUID)", event.CaseID(e)), nil
	}
	if d.ToAgency == s.self {
		r, err := q.ReferralGetForUpdate(ctx, id)
		if err != nil {
			return inbox.Reject("%s has no referral %s to mark overdue", s.self, id), nil
		}
		at := e.Time()
		if err := q.ReferralMarkOverdue(ctx, db.ReferralMarkOverdueParams{ID: r.ID, At: &at}); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if s.cfg.Coordinator != s.self {
		return inbox.Reject("%s is neither the receiver of referral %s nor the coordinator", s.self, id), nil
	}
	return nil, s.escalate(ctx, q, id, caseID, d)
}

func (s *Service) escalate(ctx context.Context, q *db.Queries, id, caseID uuid.UUID, d overdueData) error {
	return q.EscalationInsert(ctx, db.EscalationInsertParams{
		ReferralID: id, Kind: d.Kind, CaseID: caseID, FromAgency: d.FromAgency, ToAgency: d.ToAgency, Service: d.Service, DueAt: d.DueAt,
	})
}

// Escalation is an overdue referral of other agencies, as the coordinator
// sees it.
type Escalation struct {
	ReferralID uuid.UUID `json:"referral_id"`
	Kind       string    `json:"kind" doc:"accept or complete: which deadline passed"`
	CaseID     uuid.UUID `json:"case_id"`
	FromAgency string    `json:"from_agency"`
	ToAgency   string    `json:"to_agency"`
	Service    string    `json:"service"`
	DueAt      time.Time `json:"due_at"`
	ReceivedAt time.Time `json:"received_at"`
}

// Escalations lists the overdue referrals this agency coordinates, newest
// deadline first.
func (s *Service) Escalations(ctx context.Context, limit int) ([]Escalation, error) {
	rs, err := db.New(s.pool).EscalationList(ctx, int32(limit))
	if err != nil {
		return nil, fmt.Errorf("list escalations: %w", err)
	}
	return mapSlice(rs, func(e db.Escalation) Escalation {
		return Escalation{ReferralID: e.ReferralID, Kind: e.Kind, CaseID: e.CaseID, FromAgency: e.FromAgency, ToAgency: e.ToAgency, Service: e.Service, DueAt: e.DueAt, ReceivedAt: e.ReceivedAt}
	}), nil
}
