package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// DashboardFilter is the period and the organization of a dashboard.
type DashboardFilter struct {
	// Org is one of this node's organizations (the caller's own, for a
	// caller of one); empty for all of them.
	Org string
	// From and To bound the referrals' creation: From <= created_at < To.
	From, To time.Time
	// Location is the time zone whose Mondays begin the weeks; it must
	// have an IANA name Postgres knows (default UTC).
	Location *time.Location
}

// Dashboard is what a supervisor sees of the chain of help over a period:
// the referrals created in it, to this node's organizations (incoming) and
// from them (outgoing).
type Dashboard struct {
	Org      string
	From, To time.Time
	// Orgs are the open and overdue referrals of each organization
	// (every one the caller sees, with or without referrals).
	Orgs []OrgLoad
	// Times are the times to accept and to complete, by direction and
	// service.
	Times []ServiceTimes
	// Outcomes are where the referrals ended, by direction and service.
	Outcomes []ServiceOutcomes
	// Weeks are the referrals created each week of the period, the first
	// and last of which may be partly outside it.
	Weeks []WeekCount
}

// Directions of a dashboard's figures.
const (
	In  = "in"
	Out = "out"
)

// OrgLoad is what one organization of the node has open: referrals it
// received that are not finished (InOpen), those of them past a deadline
// (InOverdue), and the same of the referrals it sent.
type OrgLoad struct {
	Org                                    string
	InOpen, InOverdue, OutOpen, OutOverdue int64
}

// ServiceTimes are the median and 90th percentile of the time from
// receipt to acceptance, over the Accepted referrals, and from receipt to
// completion, over the Completed ones.
type ServiceTimes struct {
	Direction, Service          string
	Accepted                    int64
	AcceptMedian, AcceptP90     time.Duration
	Completed                   int64
	CompleteMedian, CompleteP90 time.Duration
}

// ServiceOutcomes count the referrals of one service by how they ended;
// Open are those not finished yet, Declined those declined, by reason
// code.
type ServiceOutcomes struct {
	Direction, Service                  string
	Total, Completed, Cancelled, Failed int64
	Forwarded, Open, DeclinedTotal      int64
	Declined                            map[string]int64
}

// WeekCount is how many referrals were created in the week that begins
// on Monday Start.
type WeekCount struct {
	Start   time.Time
	In, Out int64
}

// MaxDashboardPeriod is the longest period a dashboard covers: a year's
// weeks still fit on one chart.
const MaxDashboardPeriod = 367 * 24 * time.Hour

// Dashboard reads the figures of the referrals created in the period,
// of the caller's organization for a caller of one. Returns ErrForbidden
// for another organization, ErrInvalid for an unknown one or a period
// that is empty or longer than a year.
func (a *App) Dashboard(ctx context.Context, f DashboardFilter) (Dashboard, error) {
	org, err := a.listOrg(ctx, f.Org)
	if err != nil {
		return Dashboard{}, err
	}
	if !f.From.Before(f.To) {
		return Dashboard{}, fmt.Errorf("%w: the period ends before it begins", ErrInvalid)
	}
	if f.To.Sub(f.From) > MaxDashboardPeriod {
		return Dashboard{}, fmt.Errorf("%w: the period is longer than a year: choose a shorter one", ErrInvalid)
	}
	loc := f.Location
	if loc == nil {
		loc = time.UTC
	}
	d := Dashboard{Org: org.String, From: f.From, To: f.To}
	var counts []coredb.DashboardCountsRow
	var times []coredb.DashboardTimesRow
	// One snapshot, so that the figures agree; planned at Postgres's
	// default page cost, as the lists are (ListPage), and not compiled:
	// over a big period the aggregates cost enough for JIT, whose
	// compiling took longer (seconds) than the queries themselves.
	err = pgx.BeginTxFunc(ctx, a.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL random_page_cost = 4; SET LOCAL jit = off"); err != nil {
			return err
		}
		q := coredb.New(tx)
		var err error
		counts, err = q.DashboardCounts(ctx, coredb.DashboardCountsParams{Tz: loc.String(), Agency: a.self, Org: org, FromAt: f.From, ToAt: f.To})
		if err != nil {
			return err
		}
		times, err = q.DashboardTimes(ctx, coredb.DashboardTimesParams{Agency: a.self, Org: org, FromAt: f.From, ToAt: f.To})
		return err
	})
	if err != nil {
		return Dashboard{}, fmt.Errorf("read dashboard: %w", err)
	}

	for _, o := range a.cfg.Organizations {
		if !org.Valid || o.ID == org.String {
			d.Orgs = append(d.Orgs, OrgLoad{Org: o.ID})
		}
	}
	weeks := map[time.Time]*WeekCount{}
	for w := monday(f.From.In(loc)); w.Before(f.To); w = w.AddDate(0, 0, 7) {
		d.Weeks = append(d.Weeks, WeekCount{Start: w})
	}
	for i := range d.Weeks {
		weeks[d.Weeks[i].Start] = &d.Weeks[i]
	}
	outcomes := map[[2]string]*ServiceOutcomes{}
	for _, c := range counts {
		open := !referral.State(c.Status).Terminal()
		i := slices.IndexFunc(d.Orgs, func(o OrgLoad) bool { return o.Org == c.Org })
		if i < 0 { // an organization the node no longer hosts
			d.Orgs = append(d.Orgs, OrgLoad{Org: c.Org})
			i = len(d.Orgs) - 1
		}
		if open {
			if c.Direction == In {
				d.Orgs[i].InOpen += c.N
				d.Orgs[i].InOverdue += c.Overdue
			} else {
				d.Orgs[i].OutOpen += c.N
				d.Orgs[i].OutOverdue += c.Overdue
			}
		}

		if w := weeks[time.Date(c.Week.Time.Year(), c.Week.Time.Month(), c.Week.Time.Day(), 0, 0, 0, 0, loc)]; w != nil {
			if c.Direction == In {
				w.In += c.N
			} else {
				w.Out += c.N
			}
		}

		key := [2]string{c.Direction, c.Service}
		o := outcomes[key]
		if o == nil {
			o = &ServiceOutcomes{Direction: c.Direction, Service: c.Service, Declined: map[string]int64{}}
			outcomes[key] = o
		}
		o.Total += c.N
		switch referral.State(c.Status) {
		case referral.Completed:
			o.Completed += c.N
		case referral.Cancelled:
			o.Cancelled += c.N
		case referral.Failed:
			o.Failed += c.N
		case referral.Forwarded:
			o.Forwarded += c.N
		case referral.Declined:
			o.DeclinedTotal += c.N
			o.Declined[c.ReasonCode] += c.N
		default:
			o.Open += c.N
		}
	}
	for _, o := range outcomes {
		d.Outcomes = append(d.Outcomes, *o)
	}
	slices.SortFunc(d.Outcomes, func(x, y ServiceOutcomes) int {
		if x.Direction != y.Direction {
			return cmpDirection(x.Direction, y.Direction)
		}
		return strings.Compare(x.Service, y.Service)
	})
	seconds := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Second) }
	for _, t := range times {
		if t.Accepted == 0 && t.Completed == 0 {
			continue
		}
		d.Times = append(d.Times, ServiceTimes{
			Direction: t.Direction, Service: t.Service,
			Accepted: t.Accepted, AcceptMedian: seconds(t.AcceptP50), AcceptP90: seconds(t.AcceptP90),
			Completed: t.Completed, CompleteMedian: seconds(t.CompleteP50), CompleteP90: seconds(t.CompleteP90),
		})
	}
	slices.SortStableFunc(d.Times, func(x, y ServiceTimes) int { return cmpDirection(x.Direction, y.Direction) })
	return d, nil
}

// monday is the start of the week of t, in t's time zone.
func monday(t time.Time) time.Time {
	days := (int(t.Weekday()) + 6) % 7
	return time.Date(t.Year(), t.Month(), t.Day()-days, 0, 0, 0, 0, t.Location())
}

// cmpDirection puts incoming figures before outgoing ones.
func cmpDirection(x, y string) int {
	if x == y {
		return 0
	}
	if x == In {
		return -1
	}
	return 1
}
