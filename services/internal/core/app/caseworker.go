package app

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/refbus/refbus/pkg/referral"
	"github.com/refbus/refbus/schemas"
	"github.com/refbus/refbus/services/internal/core/coredb"
)

// The caseworker's day: what to act on first, who acts on it, and a
// family's case found by its number or by the person.

// noDeadline is the action_due of a referral to act on whose move has no
// deadline: it sorts after every real one.
var noDeadline = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// dueOr is the action_due of a move due by t, if any.
func dueOr(t *time.Time) time.Time {
	if t == nil || t.IsZero() {
		return noDeadline
	}
	return t.UTC()
}

// deadline is an action_due as callers see it: nil for none.
func deadline(t *time.Time) *time.Time {
	if t == nil || !t.Before(noDeadline) {
		return nil
	}
	return t
}

// ActionKey is what the needs-action view sorts and pages r by
// (ActionFilter.AfterDue): its deadline, or after every deadline for none.
func (r Referral) ActionKey() time.Time {
	if r.ActionDue != nil {
		return *r.ActionDue
	}
	return noDeadline
}

// actionDue is the deadline of the move this node has to make on r once
// it is in state next: none (NULL) on a referral it sent or that ended;
// complete by the service's deadline once accepted; else as it was.
func (a *App) actionDue(ctx context.Context, r coredb.Referral, next referral.State) *time.Time {
	if r.ToAgency != a.self || next.Terminal() {
		return nil
	}
	if next == referral.Accepted {
		var due time.Time
		if d := a.sla(ctx, r.ToOrg, r.Service).Complete; d > 0 {
			due = a.cfg.Now().Add(d)
		}
		due = dueOr(&due)
		return &due
	}
	if r.ActionDue == nil {
		due := noDeadline
		return &due
	}
	return r.ActionDue
}

// DefaultUrgency is the urgency of a referral whose referrer set none:
// urgent for a crisis service, one that must be accepted within a day.
func DefaultUrgency(sla SLA) string {
	if sla.Accept > 0 && sla.Accept <= 24*time.Hour {
		return schemas.Urgent
	}
	return schemas.Routine
}

// CaseNumber is how people name case id on the phone and on paper: the
// last 48 bits of the id (random in every UUID the network makes) in
// Crockford's base32, as two groups of five, such as 3MZ4K-7QX2D. Every
// node derives the same number from the same case; the store finds it by
// core.case_number (migration 00004).
func CaseNumber(id uuid.UUID) string {
	n := caseBits(id)
	var b [11]byte
	for i := 10; i >= 0; i-- {
		if i == 5 {
			b[i] = '-'
			continue
		}
		b[i] = crockford[n&31]
		n >>= 5
	}
	return string(b[:])
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// caseBits are the 48 bits of a case id its number writes.
func caseBits(id uuid.UUID) int64 {
	return int64(binary.BigEndian.Uint64(id[8:]) & (1<<48 - 1))
}

// ParseCaseNumber reads a case number as people type it: any case, with
// or without the dash or spaces, O for 0 and I or L for 1.
func ParseCaseNumber(s string) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range strings.ToUpper(s) {
		switch c {
		case '-', ' ':
			continue
		case 'O':
			c = '0'
		case 'I', 'L':
			c = '1'
		}
		i := strings.IndexRune(crockford, c)
		if i < 0 {
			return 0, false
		}
		n = n<<5 | int64(i)
		digits++
	}
	return n, digits == 10 && n < 1<<48
}

// ActionFilter narrows the needs-action view.
type ActionFilter struct {
	// Org is one of this node's organizations (the caller's own, for a
	// caller of one); empty for all.
	Org string
	// AssignedTo shows only the referrals assigned to this user.
	AssignedTo string
	// After pages forwards: rows due after (AfterDue, AfterID).
	AfterDue *time.Time
	AfterID  uuid.UUID
	Limit    int
}

// ActionPage is the needs-action view: the referrals this node received
// that its organizations have yet to act on, the nearest deadline first,
// and how many of all of them nobody has opened yet (up to 100).
type ActionPage struct {
	Referrals []Referral
	New       int64
}

// Actions reads the needs-action view. Each filter has its own query and
// index, so a view reads as many rows as it shows, however big the store.
func (a *App) Actions(ctx context.Context, f ActionFilter) (ActionPage, error) {
	org, err := a.listOrg(ctx, f.Org)
	if err != nil {
		return ActionPage{}, err
	}
	after := time.Time{}.Add(-1) // before every deadline
	if f.AfterDue != nil {
		after = *f.AfterDue
	}
	q := coredb.New(a.pool)
	var rs []coredb.Referral
	switch {
	case f.AssignedTo != "":
		rs, err = q.ActionMine(ctx, coredb.ActionMineParams{Username: f.AssignedTo, Agency: a.self, AfterDue: after, AfterID: f.AfterID, MaxRows: int32(f.Limit)})
	case org.Valid:
		rs, err = q.ActionOrg(ctx, coredb.ActionOrgParams{Org: org.String, Agency: a.self, AfterDue: after, AfterID: f.AfterID, MaxRows: int32(f.Limit)})
	default:
		rs, err = q.ActionAll(ctx, coredb.ActionAllParams{Agency: a.self, AfterDue: after, AfterID: f.AfterID, MaxRows: int32(f.Limit)})
	}
	if err != nil {
		return ActionPage{}, fmt.Errorf("needs action: %w", err)
	}
	n, err := q.ActionNewCount(ctx, coredb.ActionNewCountParams{Agency: a.self, Org: org})
	if err != nil {
		return ActionPage{}, fmt.Errorf("count new: %w", err)
	}
	return ActionPage{Referrals: a.referrals(ctx, rs), New: n}, nil
}

// Assign gives a referral this node received to one of the receiving
// organization's users (or the node's), or to no one (""). Returns
// ErrNotFound, or ErrInvalid for a user who may not work on it.
func (a *App) Assign(ctx context.Context, id uuid.UUID, username string) error {
	q := coredb.New(a.pool)
	r, err := q.ReferralGet(ctx, id)
	if err != nil || !a.sees(ctx, r) || r.ToAgency != a.self {
		return fmt.Errorf("%w: no referral %s received at %s", ErrNotFound, id, a.self)
	}
	if username != "" {
		u, err := a.UserByName(ctx, username)
		if errors.Is(err, ErrNotFound) || (err == nil && (u.Role == "auditor" || (u.Org != "" && u.Org != r.ToOrg))) {
			return fmt.Errorf("%w: %q is not a caseworker of %s", ErrInvalid, username, r.ToOrg)
		}
		if err != nil {
			return err
		}
	}
	if _, err := q.ReferralAssign(ctx, coredb.ReferralAssignParams{ID: id, Username: username, Agency: a.self}); err != nil {
		return fmt.Errorf("assign referral: %w", err)
	}
	return nil
}

// Opened records that someone of the receiving organization opened a
// referral: it is no longer new. Others' opening (the sender's, an
// auditor's) changes nothing.
func (a *App) Opened(ctx context.Context, r Referral) error {
	if r.Opened || r.ToAgency != a.self {
		return nil
	}
	if err := coredb.New(a.pool).ReferralOpened(ctx, r.ID); err != nil {
		return fmt.Errorf("mark opened: %w", err)
	}
	return nil
}

// CaseSummary is a case as a search finds it.
type CaseSummary struct {
	ID        uuid.UUID
	Number    string
	Referrals []Referral
}

// FindCases finds the cases the caller may see by a case number or a
// national id (matched by its keyed pseudonym, inside this node: the id
// itself is neither stored nor sent). Returns ErrInvalid for a query
// that is neither.
func (a *App) FindCases(ctx context.Context, query string) ([]CaseSummary, error) {
	query = strings.TrimSpace(query)
	q := coredb.New(a.pool)
	var rs []coredb.Referral
	var err error
	if n, ok := ParseCaseNumber(query); ok {
		rs, err = q.ReferralsByCaseNumber(ctx, n)
	} else {
		key, kerr := a.personKey(query)
		if kerr != nil || key == "" {
			return nil, fmt.Errorf("%w: %q is neither a case number (such as 3MZ4K-7QX2D) nor a national id (12 or 14 digits)", ErrInvalid, query)
		}
		rs, err = q.ReferralsByPersonKey(ctx, string(key))
	}
	if err != nil {
		return nil, fmt.Errorf("find cases: %w", err)
	}
	var out []CaseSummary
	at := map[uuid.UUID]int{}
	for _, r := range a.referrals(ctx, rs) {
		i, ok := at[r.CaseID]
		if !ok {
			i = len(out)
			at[r.CaseID] = i
			out = append(out, CaseSummary{ID: r.CaseID, Number: r.CaseNumber})
		}
		out[i].Referrals = append(out[i].Referrals, r)
	}
	return out, nil
}

// CaseDeadlines are the open deadlines of the referrals of a case this
// node sent: the sender's accept and complete clocks.
func (a *App) CaseDeadlines(ctx context.Context, caseID uuid.UUID) (map[uuid.UUID]time.Time, error) {
	ts, err := coredb.New(a.pool).SLATimersOfCase(ctx, caseID)
	if err != nil {
		return nil, fmt.Errorf("case deadlines: %w", err)
	}
	out := map[uuid.UUID]time.Time{}
	for _, t := range ts {
		out[t.ReferralID] = t.DueAt
	}
	return out, nil
}

// Colleague is a user a referral may be assigned to.
type Colleague struct {
	Username, Name string
}

// Colleagues are the users a referral to organization org may be
// assigned to.
func (a *App) Colleagues(ctx context.Context, org string) ([]Colleague, error) {
	us, err := coredb.New(a.pool).ColleaguesOf(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("colleagues: %w", err)
	}
	return mapSlice(us, func(u coredb.ColleaguesOfRow) Colleague { return Colleague{Username: u.Username, Name: u.DisplayName} }), nil
}
